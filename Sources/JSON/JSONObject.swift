// JSONObject: an object's members in document order, with lookup by key.

/// A JSON object: members in the order the document gives them; keys are unique (JSONReader refuses duplicates).
public struct JSONObject: Equatable, Sendable {
    /// One `"key": value` pair.
    public struct Member: Equatable, Sendable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The members, in document order.
    public private(set) var members: [Member] = []
    private var index: [String: Int] = [:]

    /// An empty object.
    public init() {}

    /// An object of `members`; a repeated key keeps its first position and takes the last value.
    public init(_ members: [(String, JSONValue)]) {
        for (key, value) in members { self[key] = value }
    }

    /// The keys, in document order.
    public var keys: [String] { members.map(\.key) }

    public var isEmpty: Bool { members.isEmpty }

    /// The member named `key`; setting adds it at the end or replaces its value in place.
    public subscript(key: String) -> JSONValue? {
        get { index[key].map { members[$0].value } }
        set {
            if let position = index[key] {
                if let newValue {
                    members[position].value = newValue
                } else {
                    members.remove(at: position)
                    index = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1.key, $0) })
                }
            } else if let newValue {
                index[key] = members.count
                members.append(Member(key: key, value: newValue))
            }
        }
    }

    /// Adds a member whose key is not there yet; false (and nothing added) if it is.
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        guard index[key] == nil else { return false }
        self[key] = value
        return true
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool { a.members == b.members }
}
