// Package gateway is llmesh's front door: Connect handlers (Connect, gRPC
// and gRPC-Web on one HTTP mux) for the jobs, datasets, models and inference
// APIs in contracts/proto/llmesh/api, plus /healthz and /readyz.
//
// Every call except the health endpoints needs the API token as
// "Authorization: Bearer <token>"; without it the answer is 401
// (Unauthenticated). The gateway only talks to the bus: it submits jobs,
// reads the registries and streams inference chunks; it never imports a
// service. Bus errors are mapped to Connect codes in one place (errors.go).
package gateway
