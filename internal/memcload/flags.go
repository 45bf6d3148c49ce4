package memcload

import (
	"flag"
	"time"
)

// AddFlags defines the load's flags on fs, writing into o, and returns the
// -prefill flag's value. Callers define -addr themselves (their defaults
// differ: a local memcached, or a required VIP:port).
func (o *Options) AddFlags(fs *flag.FlagSet) (prefill *bool) {
	fs.IntVar(&o.Conns, "conns", 32, "concurrent `connections`")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured run `time`")
	fs.IntVar(&o.Keys, "keys", 10000, "key `space`")
	fs.IntVar(&o.ValueSize, "value-size", 64, "value size in `bytes`")
	fs.Float64Var(&o.GetRatio, "get-ratio", 0.9, "`fraction` of requests that are gets")
	fs.IntVar(&o.MultiGet, "multiget", 1, "`keys` per get request")
	fs.IntVar(&o.Pipeline, "pipeline", 1, "`requests` in flight per connection")
	fs.StringVar(&o.KeyPrefix, "prefix", "memcload:", "key `prefix`")
	return fs.Bool("prefill", true, "store every key before measuring")
}
