package api

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates"
)

// The values of the send data the tests pass: none may be found in Redis,
// in a log or in a task.
var sendDataValues = []string{"ZX98123", "19.90", "Colissimo", "Quai-Branly"}

const dataSendBody = `{"contact":"buyer","topic":"orders","channel":"%s","template":"order-data",
 "data":{"order":{"number":"ZX98123","total":19.90,"shop":{"street":"Quai-Branly"}},"carrier":"Colissimo"}}`

// allValues returns every key and value under the test's prefix, asynq's
// queues included, as text.
func allValues(t *testing.T, b *testBundle) string {
	t.Helper()
	ctx := context.Background()
	rdb := b.redis.Client
	var sb strings.Builder
	iter := rdb.Scan(ctx, 0, "*"+b.cfg.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ := rdb.Type(ctx, k).Val()
		var v any
		switch typ {
		case "string":
			v = rdb.Get(ctx, k).Val()
		case "hash":
			v = rdb.HGetAll(ctx, k).Val()
		case "set":
			v = rdb.SMembers(ctx, k).Val()
		case "zset":
			v = rdb.ZRange(ctx, k, 0, -1).Val()
		case "list":
			v = rdb.LRange(ctx, k, 0, -1).Val()
		case "stream":
			v = rdb.XRange(ctx, k, "-", "+").Val()
		}
		fmt.Fprintf(&sb, "%s %s %v\n", k, typ, v)
	}
	must(t, iter.Err())
	return sb.String()
}

func dataSetup(t *testing.T, b *testBundle) {
	t.Helper()
	sendSetup(t, b)
	must(t, b.d.Store.PutTemplate(context.Background(), &templates.Template{ID: "order-data",
		Email: &templates.Email{Subject: "Order {{.Data.order.number}} has shipped",
			Text: "Hi {{.Attr.first_name}}, total {{.Data.order.total}} EUR, from {{.Data.order.shop.street}}, {{default \"no note\" .Data.note}}."},
		SMS: &templates.SMS{Body: "Order {{.Data.order.number}} ships with {{.Data.carrier}}"}}))
}

// TestAPISendData: a send's data renders in email and SMS, is sealed at
// rest (no value of it anywhere in Redis, in the logs or in a task),
// expires with the send, is in the contact's export and is gone with the
// contact's erasure.
func TestAPISendData(t *testing.T) {
	t.Parallel()
	b := setup(t, withWorker())
	c := b.api
	dataSetup(t, b)
	ctx := context.Background()

	ids := map[string]string{}
	for _, ch := range []string{"email", "sms"} {
		r := c.do("POST", "/v1/sends", fmt.Sprintf(dataSendBody, ch), "Idempotency-Key", "order-ZX/"+ch)
		if r.status != 202 || r.json(t)["state"] != dispatcher.StateQueued {
			t.Fatalf("%s send: %d %s", ch, r.status, r.body)
		}
		ids[ch], _ = r.json(t)["send"].(string)
	}
	mails := b.smtp.Wait(1, 20*time.Second)
	texts, err := b.twilio.Wait(1, 20*time.Second)
	must(t, err)
	body := strings.ReplaceAll(string(mails[0].Data), "=\r\n", "")
	for _, want := range []string{"Subject: Order ZX98123 has shipped", "Hi Ana, total 19.90 EUR, from Quai-Branly, no note."} {
		if !strings.Contains(body, want) {
			t.Errorf("email lacks %q:\n%s", want, body)
		}
	}
	if texts[0].Body != "Order ZX98123 ships with Colissimo" {
		t.Errorf("SMS %q", texts[0].Body)
	}
	for ch, id := range ids {
		waitFor(t, ch+" send to show as sent", 10*time.Second, func() bool {
			return c.do("GET", "/v1/sends/"+url.PathEscape(id), "").json(t)["state"] == dispatcher.StateSent
		})
	}

	// At rest: sealed in the send record, nowhere else; expiring with it.
	all := allValues(t, b)
	for _, v := range sendDataValues {
		if strings.Contains(all, v) {
			t.Errorf("Redis holds %q in the clear", v)
		}
		if strings.Contains(b.logs.String(), v) {
			t.Errorf("the logs hold %q", v)
		}
	}
	for _, id := range ids {
		key := b.d.Store.SendKey(id)
		if b.redis.Client.HGet(ctx, key, "data").Val() == "" {
			t.Errorf("send %s holds no data", id)
		}
		if ttl := b.redis.Client.TTL(ctx, key).Val(); ttl <= 89*24*time.Hour || ttl > 90*24*time.Hour {
			t.Errorf("send record TTL %v, want the send retention", ttl)
		}
		// GET /v1/sends/{id} does not show it.
		if r := c.do("GET", "/v1/sends/"+url.PathEscape(id), ""); strings.Contains(string(r.body), "ZX98123") || strings.Contains(string(r.body), `"data"`) {
			t.Errorf("GET send shows the data: %s", r.body)
		}
	}

	// The export holds it.
	r := c.do("GET", "/v1/contacts/buyer/export", "")
	if r.status != 200 {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	var exported int
	for _, s := range r.json(t)["sends"].([]any) {
		m := s.(map[string]any)
		want := map[string]any{"order": map[string]any{"number": "ZX98123", "total": 19.9, "shop": map[string]any{"street": "Quai-Branly"}}, "carrier": "Colissimo"}
		if diff := cmp.Diff(want, m["data"]); diff != "" {
			t.Errorf("exported data of %v (-want +got):\n%s", m["id"], diff)
		}
		exported++
	}
	if exported != 2 {
		t.Errorf("%d sends exported, want 2", exported)
	}

	// Erasure takes it away, ciphertext and all.
	sealed := b.redis.Client.HGet(ctx, b.d.Store.SendKey(ids["email"]), "data").Val()
	if r := c.do("DELETE", "/v1/contacts/buyer", ""); r.status != 200 {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	if strings.Contains(allValues(t, b), sealed) {
		t.Error("the sealed data outlived the erasure")
	}
	for _, id := range ids {
		if n := b.redis.Client.Exists(ctx, b.d.Store.SendKey(id)).Val(); n != 0 {
			t.Errorf("send %s outlived the erasure", id)
		}
	}
}

// TestAPISendDataRules: data that is too large, too deep, not an object
// or with a key a template cannot reach is refused naming data, and
// changes nothing; the same key with other data is another body, with the
// same data spelled otherwise the same.
func TestAPISendDataRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.api
	dataSetup(t, b)
	deep := `{"a":1}`
	for range dispatcher.MaxSendDataDepth {
		deep = `{"a":` + deep + `}`
	}
	arrDeep := `[1]`
	for range dispatcher.MaxSendDataDepth - 1 {
		arrDeep = `[` + arrDeep + `]`
	}
	for name, data := range map[string]string{
		"too large":                   `{"note":"` + strings.Repeat("x", dispatcher.MaxSendDataSize) + `"}`,
		"too deep":                    deep,
		"too deep in arrays":          `{"a":` + arrDeep + `}`,
		"an array":                    `[{"a":1}]`,
		"a string":                    `"ZX98123"`,
		"a number":                    `42`,
		"a key with a hyphen":         `{"order-number":"ZX98123"}`,
		"a nested key with a dot":     `{"order":{"a.b":1}}`,
		"a key starting with a digit": `{"1st":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			before := snapshotRedis(t, b)
			body := `{"contact":"buyer","topic":"orders","channel":"email","template":"order-data","data":` + data + `}`
			r := c.do("POST", "/v1/sends", body, "Idempotency-Key", "rules/"+name)
			if diff := cmp.Diff(apiErr(dispatcher.CodeInvalid, "data"), errorShape(r.json(t))); r.status != 422 || diff != "" {
				t.Errorf("status %d (-want +got):\n%s", r.status, diff)
			}
			if strings.Contains(string(r.body), "ZX98123") || strings.Contains(string(r.body), "order-number") {
				t.Errorf("the error quotes the data: %s", r.body)
			}
			if diff := cmp.Diff(before, snapshotRedis(t, b)); diff != "" {
				t.Errorf("Redis changed (-before +after):\n%s", diff)
			}
		})
	}
	// At the limits: accepted.
	ok := `{"a":1}`
	for range dispatcher.MaxSendDataDepth - 2 {
		ok = `{"a":` + ok + `}`
	}
	if r := c.do("POST", "/v1/sends", `{"contact":"buyer","topic":"orders","channel":"email","template":"order-data","data":`+ok+`}`, "Idempotency-Key", "rules/deepest"); r.status != 202 {
		t.Errorf("data %d levels deep: %d %s", dispatcher.MaxSendDataDepth, r.status, r.body)
	}

	first := c.do("POST", "/v1/sends", fmt.Sprintf(dataSendBody, "email"), "Idempotency-Key", "order-ZX/idem")
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	same := `{"data":{"carrier":"Colissimo","order":{"shop":{"street":"Quai-Branly"},"total":19.90,"number":"ZX98123"}},
	 "template":"order-data","channel":"email","topic":"orders","contact":"buyer"}`
	if r := c.do("POST", "/v1/sends", same, "Idempotency-Key", "order-ZX/idem"); r.status != 202 || string(r.body) != string(first.body) {
		t.Errorf("same data spelled otherwise: %d %s, want the first answer %s", r.status, r.body, first.body)
	}
	other := strings.Replace(fmt.Sprintf(dataSendBody, "email"), "ZX98123", "ZX98124", 1)
	r := c.do("POST", "/v1/sends", other, "Idempotency-Key", "order-ZX/idem")
	if diff := cmp.Diff(apiErr(dispatcher.CodeIdempotency, "Idempotency-Key"), errorShape(r.json(t))); r.status != 422 || diff != "" {
		t.Errorf("other data: %d (-want +got):\n%s", r.status, diff)
	}
	noData := `{"contact":"buyer","topic":"orders","channel":"email","template":"order-data"}`
	if r := c.do("POST", "/v1/sends", noData, "Idempotency-Key", "order-ZX/idem"); r.status != 422 {
		t.Errorf("no data under a key used with data: %d", r.status)
	}
	// A send the gate stops keeps no data.
	ctx := context.Background()
	must(t, b.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "promo", Kind: dispatcher.Marketing}))
	stopped := strings.Replace(fmt.Sprintf(dataSendBody, "email"), `"orders"`, `"promo"`, 1)
	r = c.do("POST", "/v1/sends", stopped, "Idempotency-Key", "promo-ZX")
	if r.status != 202 || r.json(t)["reason"] != "no_consent" {
		t.Fatalf("send without consent: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["send"].(string)
	if n := b.redis.Client.HExists(ctx, b.d.Store.SendKey(id), "data").Val(); n {
		t.Error("a suppressed send holds data")
	}
	// The idempotency record keeps a keyed digest, not the data.
	if all := allValues(t, b); strings.Contains(all, "ZX98123") || strings.Contains(all, "Colissimo") {
		t.Error("Redis holds the data in the clear")
	}
}

// TestPreviewSendData: a preview renders a sample of a send's data, and
// refuses a bad one naming send_data.
func TestPreviewSendData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dataSetup(t, b)
	r := b.api.do("POST", "/v1/templates/order-data/preview", `{"channel":"sms","send_data":{"order":{"number":"A-1"},"carrier":"La Poste"}}`)
	if r.status != 200 || !strings.HasPrefix(r.json(t)["sms"].(string), "Order A-1 ships with La Poste\n") {
		t.Errorf("preview: %d %s", r.status, r.body)
	}
	r = b.api.do("POST", "/v1/templates/order-data/preview", `{"channel":"sms","send_data":["A-1"]}`)
	if diff := cmp.Diff(apiErr(dispatcher.CodeInvalid, "send_data"), errorShape(r.json(t))); r.status != 422 || diff != "" {
		t.Errorf("bad send_data: %d (-want +got):\n%s", r.status, diff)
	}
	// Without it, the missing key is named, as a missing attribute is.
	r = b.api.do("POST", "/v1/templates/order-data/preview", `{"channel":"sms"}`)
	if r.status != 422 || !strings.Contains(string(r.body), "order") {
		t.Errorf("preview without data: %d %s", r.status, r.body)
	}
}
