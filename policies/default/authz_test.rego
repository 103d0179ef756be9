package envoy.authz_test

import rego.v1

import data.envoy.authz

req(method, path) := {"attributes": {"request": {"http": {"method": method, "path": path}}}}

with_id(r, id) := object.union(r, {"spiffe": {"id": id}})

frontend := "spiffe://example.org/ns/default/sa/frontend"

test_health_probe_allowed_without_identity if {
	authz.allow.allowed with input as req("GET", "/healthz")
	authz.allow.reason == "health-probes" with input as req("GET", "/healthz")
}

test_health_probe_post_denied if not authz.allow.allowed with input as req("POST", "/healthz")

test_public_docs_nested if authz.allow.allowed with input as req("GET", "/public/a/b/c.html")

test_query_string_ignored if authz.allow.allowed with input as req("GET", "/healthz?verbose=1")

test_frontend_reads_api if {
	r := authz.allow with input as with_id(req("GET", "/api/orders/7"), frontend)
	r.allowed
	r.headers["x-verdict-rule"] == "frontend-reads-api"
}

test_frontend_cannot_write_api if not authz.allow.allowed with input as with_id(req("POST", "/api/orders"), frontend)

test_unauthenticated_cannot_read_api if not authz.allow.allowed with input as req("GET", "/api/orders")

test_other_service_cannot_read_api if {
	not authz.allow.allowed with input as with_id(req("GET", "/api/orders"), "spiffe://example.org/ns/default/sa/backend")
}

test_billing_glob_matches_any_sa if {
	authz.allow.allowed with input as with_id(req("POST", "/api/invoices/42"), "spiffe://example.org/ns/billing/sa/worker")
}

test_billing_glob_one_segment_only if {
	not authz.allow.allowed with input as with_id(req("POST", "/api/invoices/42"), "spiffe://example.org/ns/billing/sa/worker/extra")
}

test_other_trust_domain_refused if {
	not authz.allow.allowed with input as with_id(req("GET", "/api/orders"), "spiffe://evil.org/ns/default/sa/frontend")
}

test_authenticated_status if authz.allow.allowed with input as with_id(req("GET", "/status"), "spiffe://example.org/x")

test_status_needs_identity if not authz.allow.allowed with input as req("GET", "/status")

test_admin_denied_even_when_other_rules_match if {
	r := authz.allow with input as with_id(req("GET", "/admin/users"), frontend)
	not r.allowed
	r.reason == "no-admin-over-mesh"
	r.http_status == 403
}

test_default_deny_shape if {
	r := authz.allow with input as req("DELETE", "/anything")
	not r.allowed
	r.reason == "no_rule_matched"
	r.headers["x-verdict-policy"] == "default"
}

test_star_path_segment if {
	authz.pattern_matches("/api/invoices/*", "/api/invoices/42")
	not authz.pattern_matches("/api/invoices/*", "/api/invoices/42/x")
	not authz.pattern_matches("/api/invoices/*", "/api/invoices")
}

test_double_star_is_prefix_below if {
	authz.pattern_matches("/public/**", "/public/a/b")
	authz.pattern_matches("/public/**", "/public/")
	not authz.pattern_matches("/public/**", "/public")
	not authz.pattern_matches("/public/**", "/publicity")
}
