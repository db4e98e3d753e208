v2.0.0
000000000000

module
module  
go
go 1 2
retract (
retract [
