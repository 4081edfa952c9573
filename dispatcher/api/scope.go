package api

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/missive-dev/missive/dispatcher"
)

// Scope is a part of the API an API key may use.
type Scope string

const (
	// ScopeCampaigns: topics, templates, segments, campaigns and runs.
	ScopeCampaigns Scope = "campaigns"
	// ScopeContacts: contacts, their consents and bulk imports.
	ScopeContacts Scope = "contacts"
	// ScopeSends: triggering single sends and reading their status.
	ScopeSends Scope = "sends"
	// ScopePrivacy: suppressions, erasure, exports, the audit log and the
	// record of processing.
	ScopePrivacy Scope = "privacy"
)

// Scopes lists every scope, in the order errors name them.
var Scopes = []Scope{ScopeCampaigns, ScopeContacts, ScopeSends, ScopePrivacy}

// Allows reports whether the key may use scope s. A key without a scope
// list has every scope: keys written before scopes existed keep working.
func (k APIKey) Allows(s Scope) bool {
	return k.Scopes == nil || slices.Contains(k.Scopes, s)
}

// parseScopes reads "campaigns+contacts". Errors never quote the text: a
// secret with a colon would otherwise show its end.
func parseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, part := range strings.Split(s, "+") {
		sc := Scope(strings.TrimSpace(part))
		switch {
		case !slices.Contains(Scopes, sc):
			return nil, fmt.Errorf("the text after the last colon is not a scope list (want scopes joined by +, among %s; a secret cannot contain a colon)", joinScopes(Scopes))
		case slices.Contains(out, sc):
			return nil, fmt.Errorf("scope %s is listed twice", sc)
		}
		out = append(out, sc)
	}
	return out, nil
}

func joinScopes(ss []Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// routeScopes gives the scope of routes by pattern, for routes whose row
// in the table leaves the scope column empty: erasure and export are
// privacy matters even though they live under /v1/contacts.
var routeScopes = map[string]Scope{
	"DELETE /v1/contacts/{id}":     ScopePrivacy,
	"GET /v1/contacts/{id}/export": ScopePrivacy,
}

// routeAudits gives the audit action of routes by pattern, for rows whose
// audit column is empty.
var routeAudits = map[string]string{
	"DELETE /v1/contacts/{id}": "contact.erase",
}

// scopeOf returns the scope a route needs: its declared one, else the one
// named by routeScopes, else one derived from the path. A route never
// goes without a scope.
func scopeOf(pattern string, declared Scope) Scope {
	if declared != "" {
		return declared
	}
	if s, ok := routeScopes[pattern]; ok {
		return s
	}
	_, path, _ := strings.Cut(pattern, " ")
	switch seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/v1/"), "/"); seg {
	case "contacts":
		return ScopeContacts
	case "topics", "templates", "segments", "campaigns", "runs":
		return ScopeCampaigns
	case "sends":
		return ScopeSends
	}
	return ScopePrivacy
}

type keyContextKey struct{}

// KeyID returns the id of the API key that authenticated the request of
// ctx, or "" outside an authenticated API call.
func KeyID(ctx context.Context) string {
	k, _ := ctx.Value(keyContextKey{}).(APIKey)
	return k.ID
}

func withKey(ctx context.Context, k APIKey) context.Context {
	k.Secret = "" // the context needs the id and the scopes, never the secret
	return context.WithValue(ctx, keyContextKey{}, k)
}

// needScope returns a forbidden error unless the key that authenticated
// the request of ctx has scope s too, for a route whose own scope lets it
// in but whose answer would, for this request, show what s guards (a
// preview with a real contact's data). what says what needs it.
func needScope(ctx context.Context, s Scope, what string) error {
	k, ok := ctx.Value(keyContextKey{}).(APIKey)
	if ok && k.Allows(s) {
		return nil
	}
	return &dispatcher.Error{Code: dispatcher.CodeForbidden,
		Message: fmt.Sprintf("API key %q lacks the %s scope %s needs", k.ID, s, what)}
}
