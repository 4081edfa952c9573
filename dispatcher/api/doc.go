// Package api is Missive's HTTP surface: the JSON API under /v1 (one route
// table with each route's scope and audit action, API keys compared in
// constant time, one error writer), the public pages a recipient uses
// (one-click unsubscribe, preferences, sign-up form and confirmation,
// rendered by package page), the providers' webhooks (mounted from
// package webhook) and the operations routes (/healthz, /readyz). The
// OpenAPI 3.1 document of the /v1 routes, openapi.json, is embedded and
// served, public, at /v1/openapi.json; its tests hold it to the route
// table and to the real handlers.
//
//	h := api.Handler(d, []api.APIKey{{ID: "crm", Secret: secret, Scopes: []api.Scope{api.ScopeContacts}}})
//	http.ListenAndServe(":8080", h)
package api
