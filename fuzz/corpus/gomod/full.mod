v1.2.4-0.20191109021931-daa7c04131f5
daa7c04131f5
module example.com/m // comment

go 1.21

retract v1.0.0
retract [v1.1.0, v1.2.0]
retract (
  v1.3.0 // bad
  ["v1.4.0", `v1.5.0`]
)
require (
	golang.org/x/mod v0.14.0
)
