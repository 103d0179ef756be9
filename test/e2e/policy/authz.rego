# The e2e tests' policy: one rule per behaviour the tests drive through a real Envoy. Rules are an
# else-chain so exactly one result is produced; the first matching rule decides.
package envoy.authz

import rego.v1

http := input.attributes.request.http

path := split(http.path, "?")[0]

frontend := "spiffe://example.org/ns/default/sa/frontend"

deny_default := {
	"allowed": false,
	"http_status": 403,
	"body": "denied by e2e policy\n",
	"headers": {"x-denied-by": "e2e"},
}

# Conformance: every OkHttpResponse field verdict emits, plus dynamic_metadata.
allow := {
	"allowed": true,
	"headers": {"x-verdict-user": "alice", "x-multi": ["a", "b"]},
	"request_headers_to_remove": ["x-secret"],
	"response_headers_to_add": {"x-decided-by": "verdict", "x-upstream": "policy"},
	"query_parameters_to_set": {"tenant": "t1"},
	"query_parameters_to_remove": ["debug"],
	"dynamic_metadata": {"user": "alice"},
} if {
	http.headers["x-token"] == "good"
}

# Conformance: a deny with the policy's status, body and headers.
else := {
	"allowed": false,
	"http_status": 401,
	"body": "who are you?\n",
	"headers": {"www-authenticate": "Bearer realm=\"e2e\"", "x-denied-by": "e2e"},
} if {
	http.headers["x-token"] == "bad"
}

else := {
	"allowed": false,
	"http_status": 409, # in envoy.type.v3.StatusCode (418 is not)
	"body": "no tea here\n",
	"headers": {"x-denied-by": "teapot"},
} if {
	path == "/teapot"
}

# parsed_body: JSON orders under 100 pass, others are refused with 422.
else := {"allowed": true, "headers": {"x-order-amount": format_int(input.parsed_body.amount, 10)}} if {
	path == "/orders"
	input.parsed_body.amount < 100
}

else := {"allowed": false, "http_status": 422, "body": "amount too large\n"} if {
	path == "/orders"
}

# Public paths: allowed for anyone; the service name comes from the route's context_extensions.
else := {
	"allowed": true,
	"headers": {"x-verdict-rule": "public", "x-verdict-service": object.get(input.attributes, ["contextExtensions", "service"], "none")},
	"request_headers_to_remove": ["x-secret"],
} if {
	startswith(path, "/public")
}

# Identity (HTTP over mTLS and L4): the frontend's SPIFFE ID, as Envoy forwards it, is allowed.
else := {
	"allowed": true,
	"headers": {
		"x-verdict-caller": input.attributes.source.principal,
		"x-peer-cert": peer_cert_seen,
	},
} if {
	input.attributes.source.principal == frontend
}

else := deny_default

# Envoy sends the caller's certificate URL-encoded (include_peer_certificate).
peer_cert_seen := "present" if {
	startswith(input.attributes.source.certificate, "-----BEGIN%20CERTIFICATE-----")
} else := "absent"
