v0.0.0-20191109021931-daa7c04131f5
abcdef123456
module "example.com/q\"uoted"
go 1.24rc1
retract v1.0
