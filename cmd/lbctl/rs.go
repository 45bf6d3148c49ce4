package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
)

func runRSAdd(ctx context.Context, a *app, cmd *command, args []string) error {
	var w int
	pos, err := a.parseArgs(cmd, args, 2, 2, func(fs *flag.FlagSet) {
		fs.IntVar(&w, "w", 1, "`weight` (0: configured but idle)")
	})
	if err != nil {
		return err
	}
	rl, err := parseRealSpec(pos[1])
	if err != nil {
		return usagef("%v", err)
	}
	rl.Weight = &w
	c, err := a.client()
	if err != nil {
		return err
	}
	svc := serviceName(pos[0])
	if err := c.AddReal(ctx, svc, rl); err != nil {
		return err
	}
	return a.done(fmt.Sprintf("added %s to %s with weight %d", pos[1], svc, w))
}

func runRSDel(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 2, 2, nil)
	if err != nil {
		return err
	}
	svc := serviceName(pos[0])
	if err := c.DeleteReal(ctx, svc, pos[1]); err != nil {
		return err
	}
	return a.done(fmt.Sprintf("removed %s from %s", pos[1], svc))
}

func runRSWeight(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, err := a.parseArgs(cmd, args, 3, 3, nil)
	if err != nil {
		return err
	}
	w, err := strconv.Atoi(pos[2])
	if err != nil || w < 0 {
		return usagef("bad weight %q", pos[2])
	}
	return a.setWeight(ctx, pos[0], pos[1], w)
}

func runRSDrain(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, err := a.parseArgs(cmd, args, 2, 2, nil)
	if err != nil {
		return err
	}
	return a.setWeight(ctx, pos[0], pos[1], 0)
}

func (a *app) setWeight(ctx context.Context, service, addr string, w int) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	svc := serviceName(service)
	if err := c.SetWeight(ctx, svc, addr, w); err != nil {
		return err
	}
	if w == 0 {
		return a.done(fmt.Sprintf("draining %s of %s (weight 0)", addr, svc))
	}
	return a.done(fmt.Sprintf("weight of %s in %s is now %d", addr, svc, w))
}
