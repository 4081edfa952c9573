package api

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/privacy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

var registerNow = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func TestRegister(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(registerNow), withConfig(func(c *app.Config) {
		c.SenderName = "Shop"
		c.SendTTL = 30 * 24 * time.Hour
		c.Processors = []string{"SMTP relay (smtp.shop.example)", "Twilio"}
	}))
	c := b.api
	ctx := context.Background()
	for _, tp := range []dispatcher.Topic{
		{ID: "newsletter", Name: "Newsletter", Kind: dispatcher.Marketing, Description: "News | offers, once a month"},
		{ID: "orders", Kind: dispatcher.Transactional, Description: "Order and delivery updates"},
	} {
		if err := b.d.Store.PutTopic(ctx, &tp); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := b.d.Privacy.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(privacy.Controller{Name: "Shop", Address: privacy.Todo, DPO: privacy.Todo}, reg.Controller); diff != "" {
		t.Errorf("controller (-want +got):\n%s", diff)
	}
	wantPurposes := []privacy.Purpose{
		{Topic: "newsletter", Name: "Newsletter", Description: "News | offers, once a month", Kind: dispatcher.Marketing, LegalBasis: "consent", Article: "Art. 6(1)(a)"},
		{Topic: "orders", Name: "orders", Description: "Order and delivery updates", Kind: dispatcher.Transactional, LegalBasis: "contract", Article: "Art. 6(1)(b)"},
	}
	if diff := cmp.Diff(wantPurposes, reg.Purposes); diff != "" {
		t.Errorf("purposes (-want +got):\n%s", diff)
	}
	wantRecipients := []privacy.Recipient{{Name: "SMTP relay (smtp.shop.example)", Role: "processor"}, {Name: "Twilio", Role: "processor"}}
	if diff := cmp.Diff(wantRecipients, reg.Recipients); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if reg.Retention[0].Period != "30 days" {
		t.Errorf("send records kept %q, want the SendTTL, 30 days", reg.Retention[0].Period)
	}

	// JSON over the API: the field names clients rely on.
	r := c.as("dpo", "GET", "/v1/register", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/register: %d %s: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"generated_at", "controller", "purposes", "data_subjects", "data_categories", "recipients", "transfers", "retention", "security"} {
		if _, ok := v[f]; !ok {
			t.Errorf("register JSON lacks %q", f)
		}
	}
	p := v["purposes"].([]any)[1].(map[string]any)
	if diff := cmp.Diff(map[string]any{"topic": "orders", "name": "orders", "description": "Order and delivery updates",
		"kind": "transactional", "legal_basis": "contract", "article": "Art. 6(1)(b)"}, p); diff != "" {
		t.Errorf("purpose JSON (-want +got):\n%s", diff)
	}

	// Markdown over the API is the same document as Register.Markdown.
	r = c.as("dpo", "GET", "/v1/register?format=markdown", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/markdown; charset=utf-8" {
		t.Fatalf("GET /v1/register?format=markdown: %d %s", r.status, r.header.Get("Content-Type"))
	}
	golden(t, "register.md", string(r.body))
	if string(r.body) != reg.Markdown() {
		t.Error("the API's Markdown differs from Register.Markdown")
	}
	if r := c.as("dpo", "GET", "/v1/register?format=pdf", ""); r.status != http.StatusUnprocessableEntity {
		t.Errorf("format=pdf: status %d, want 422", r.status)
	}
}

func TestRegisterWithoutTopicsOrProcessors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg, err := b.d.Privacy.Register(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Purposes) != 0 || len(reg.Recipients) != 1 || reg.Recipients[0].Role != "none" {
		t.Errorf("purposes %v, recipients %v", reg.Purposes, reg.Recipients)
	}
	if reg.Retention[0].Period != "90 days" {
		t.Errorf("default send retention %q", reg.Retention[0].Period)
	}
	b2, _ := json.Marshal(reg)
	var v map[string]any
	json.Unmarshal(b2, &v)
	if v["purposes"] == nil {
		t.Error("purposes is null rather than an empty list")
	}
}
