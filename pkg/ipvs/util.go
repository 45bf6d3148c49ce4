package ipvs

import "time"

func secondsToDuration(s uint32) time.Duration { return time.Duration(s) * time.Second }
