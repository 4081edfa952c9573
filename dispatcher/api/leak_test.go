package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
)

// The whole life of a campaign against a real Redis, then every key and
// value Missive and its queues left in Redis, and every log line, are read:
// no seeded address, number or attribute value appears anywhere.
func TestNothingInTheClear(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.BounceDomain = "bounce.shop.example" }), withBasics())
	ctx := context.Background()
	var secrets []string
	for i := range 20 {
		c := &dispatcher.Contact{ID: fmt.Sprintf("p%02d", i), Email: fmt.Sprintf("secret.person%02d@privacy.example", i),
			Phone: fmt.Sprintf("+336123456%02d", i), Attributes: map[string]string{"first_name": fmt.Sprintf("Zéphyrine%02d", i)}}
		must(t, b.d.Store.UpsertContact(ctx, c, "Europe/Paris"))
		grantConsent(t, b, c.ID, channels.Email, channels.SMS)
		secrets = append(secrets, c.Email, c.Phone, strings.TrimPrefix(c.Phone, "+"), c.Attributes["first_name"])
	}
	must(t, b.d.Store.Suppress(ctx, channels.Email, "secret.person00@privacy.example", dispatcher.SuppressBounce, time.Time{}))
	b.smtp.Reject("secret.person01@privacy.example", 451, "4.2.1", "later")
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "leak", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.Email, channels.SMS}, Templates: map[channels.Kind]string{channels.Email: "news-mail", channels.SMS: "news-sms"}}))
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "leak", time.Now())
	must(t, err)
	b.smtp.Wait(18, 20*time.Second)
	b.twilio.Wait(20, 20*time.Second)

	// Feedback and a one-click, so that their records exist too.
	must(t, b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: dispatcher.SendID(run, "p02", channels.Email), Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"}))
	link, err := b.d.Pipeline.UnsubscribeURL("p03", channels.Email, "newsletter", dispatcher.SendID(run, "p03", channels.Email))
	must(t, err)
	res, err := http.Post(b.srv.URL+strings.TrimPrefix(link, b.cfg.PublicURL), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	must(t, err)
	res.Body.Close()

	var keys int
	for _, pattern := range []string{b.redis.Prefix + "*", "asynq:{" + b.redis.Prefix + "*"} {
		iter := b.redis.Client.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys++
			key := iter.Val()
			for _, v := range append(values(ctx, t, b.redis.Client, key), key) {
				for _, s := range secrets {
					if strings.Contains(v, s) {
						t.Errorf("key %s holds personal data in the clear", key)
					}
				}
			}
		}
	}
	if keys < 50 {
		t.Errorf("read only %d keys: the test reads the wrong place", keys)
	}
	for _, s := range secrets {
		if strings.Contains(b.logs.String(), s) {
			t.Errorf("the logs hold personal data")
			break
		}
	}
	t.Logf("read %d keys and %d bytes of logs", keys, len(b.logs.String()))
}

// values returns everything a key holds, whatever its type.
func values(ctx context.Context, t *testing.T, rdb *redis.Client, key string) []string {
	t.Helper()
	switch rdb.Type(ctx, key).Val() {
	case "string":
		return []string{rdb.Get(ctx, key).Val()}
	case "hash":
		var out []string
		for k, v := range rdb.HGetAll(ctx, key).Val() {
			out = append(out, k, v)
		}
		return out
	case "list":
		return rdb.LRange(ctx, key, 0, -1).Val()
	case "set":
		return rdb.SMembers(ctx, key).Val()
	case "zset":
		return rdb.ZRange(ctx, key, 0, -1).Val()
	case "stream":
		var out []string
		for _, m := range rdb.XRange(ctx, key, "-", "+").Val() {
			for k, v := range m.Values {
				out = append(out, k, fmt.Sprint(v))
			}
		}
		return out
	}
	return nil
}
