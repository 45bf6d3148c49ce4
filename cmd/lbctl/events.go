package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/internal/events"
)

func runEvents(ctx context.Context, a *app, cmd *command, args []string) error {
	var recent bool
	_, c, err := a.begin(cmd, args, 0, 0, func(fs *flag.FlagSet) {
		fs.BoolVar(&recent, "recent", false, "replay the recent events first")
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(a.stdout)
	err = c.Events(ctx, recent, func(ev events.Event) error {
		switch a.g.output {
		case "json":
			return enc.Encode(ev)
		case "yaml":
			fmt.Fprintln(a.stdout, "---")
			return writeYAML(a.stdout, ev)
		}
		_, err := fmt.Fprintln(a.stdout, eventLine(ev))
		return err
	})
	if errors.Is(err, context.Canceled) {
		return nil // interrupted by the operator
	}
	return err
}

// eventLine formats an event for humans: time, kind, message, attributes.
func eventLine(ev events.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s %s", ev.Time.Format("2006-01-02T15:04:05.000Z07:00"), ev.Kind, ev.Message)
	for _, k := range slices.Sorted(maps.Keys(ev.Attrs)) {
		fmt.Fprintf(&b, " %s=%q", k, ev.Attrs[k])
	}
	if ev.Dropped > 0 {
		fmt.Fprintf(&b, " (%d events lost before this one)", ev.Dropped)
	}
	return b.String()
}
