package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// snapshotRedis is every key of the test's prefix with its value, in a
// canonical text by type (no DUMP: the in-process Redis cannot dump
// hashes), but for the keys containing one of skip: equal snapshots mean
// nothing was written.
func snapshotRedis(t *testing.T, b *testBundle, skip ...string) map[string]string {
	t.Helper()
	ctx := context.Background()
	rdb := b.cfg.Redis
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, b.cfg.Prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if slices.ContainsFunc(skip, func(s string) bool { return strings.Contains(k, s) }) {
			continue
		}
		typ, err := rdb.Type(ctx, k).Result()
		must(t, err)
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "set":
			var m []string
			m, err = rdb.SMembers(ctx, k).Result()
			slices.Sort(m)
			v = m
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		default:
			v = "(" + typ + ")"
		}
		must(t, err)
		out[k] = fmt.Sprintf("%s %v", typ, v)
	}
	must(t, iter.Err())
	return out
}
