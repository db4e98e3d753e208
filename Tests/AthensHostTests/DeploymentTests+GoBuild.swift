import Foundation
import Testing

/// The go command building a program through the balancer: what a developer behind the deployment does.
extension DeploymentTests {
    /// A main module importing example.com/app, which imports example.com/dep (Tests/Fixtures/make_fixture_proxy.py):
    /// `go get` resolves both through `proxy`; the go.sum it wrote and the directory, for a build.
    func goGet(proxy: String, cache: String) throws -> (sum: String, directory: String) {
        let directory = TestSupport.makeTemporaryDirectory("deploy-gomod")
        try "module example.com/consumer\n\ngo 1.19\n".write(toFile: directory + "/go.mod", atomically: true, encoding: .utf8)
        // println, not fmt: the fresh build cache then compiles the runtime alone.
        try "package main\n\nimport \"example.com/app\"\n\nfunc main() { println(\"answer\", app.Run()) }\n"
            .write(toFile: directory + "/main.go", atomically: true, encoding: .utf8)
        let result = try GoCommand.run(["get", "example.com/app@v1.0.0"], proxy: proxy, directory: directory,
                                       extraEnvironment: ["GOCACHE": cache])
        #expect(result.status == 0, "go get via \(proxy): \(result.stderr)")
        return ((try? String(contentsOfFile: directory + "/go.sum", encoding: .utf8)) ?? "", directory)
    }

    @Test("go get + go build through the balancer: a module importing another, go.sum equal to the upstream's, the binary runs")
    func goBuildThroughTheBalancer() throws {
        let cache = work + "/gocache"
        let direct = try goGet(proxy: settings["DEPLOY_UPSTREAM"]!, cache: cache)
        let viaBalancer = try goGet(proxy: settings["DEPLOY_URL"]!, cache: cache)
        defer { TestSupport.removeDirectory(direct.directory); TestSupport.removeDirectory(viaBalancer.directory) }
        // Both modules, each with its zip hash and its go.mod hash.
        for module in ["example.com/app v1.0.0 h1:", "example.com/app v1.0.0/go.mod h1:", "example.com/dep v1.0.0 h1:", "example.com/dep v1.0.0/go.mod h1:"] {
            #expect(viaBalancer.sum.contains(module), "\(viaBalancer.sum)")
        }
        #expect(viaBalancer.sum == direct.sum)
        // Built from the modules the balancer served (the module cache of the `go get` above is fresh: GoCommand).
        let binary = viaBalancer.directory + "/consumer"
        let build = try GoCommand.run(["build", "-o", binary, "."], proxy: settings["DEPLOY_URL"]!, directory: viaBalancer.directory,
                                      extraEnvironment: ["GOCACHE": cache])
        #expect(build.status == 0, "go build: \(build.stderr)")
        let run = try TestSupport.run(binary, [])
        #expect(run.status == 0 && run.stderr.contains("answer 42"), "\(run.stdout) \(run.stderr)")
        // Every module file went through nginx to an instance (its access log has them).
        for path in ["/example.com/app/@v/v1.0.0.zip", "/example.com/dep/@v/v1.0.0.zip"] {
            #expect(!instancesServing(path).isEmpty, "\(path) never went through nginx")
        }
    }
}
