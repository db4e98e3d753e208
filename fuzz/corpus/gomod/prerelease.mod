v1.2.3-pre.0.20191109021931-daa7c04131f5+incompatible
0123456789ab
module `example.com/m/v2`
retract [v2.0.0, v1.0.0]
retract "v1.0.0+meta"
