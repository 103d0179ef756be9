# verdict's default mesh policy.
#
# Decides from three facts of a request: who calls (the verified SPIFFE ID verdict puts in
# input.spiffe), the HTTP method, and the request path (without its query). Rules live in data
# (data.mesh, see data.json) so operators change who may do what without touching Rego.
#
#   principals  "spiffe://td/path"  that exact ID; a "*" segment matches any one segment
#               "authenticated"     any caller with a verified SVID
#               "anyone"            any caller, with or without an SVID
#   methods     HTTP methods, or "*"
#   paths       "/exact/path"; a "*" segment matches any one segment; a final "/**" matches
#               everything below (not the bare prefix itself)
#
# Matching is plain string and segment comparison, not glob.match: opa-wasm resets its heap after each
# evaluation, so compiled glob patterns would be rebuilt on every request (about 10x the cost).
#
# Explicit deny rules (data.mesh.deny) win over allow rules. No matching rule: deny (403).
# The result is opa-envoy-plugin's object form: upstream requests carry x-verdict-rule, denials
# carry x-verdict-policy, and "reason" names the rule that decided.
package envoy.authz

import rego.v1

default allow := {
	"allowed": false,
	"http_status": 403,
	"headers": {"x-verdict-policy": "default"},
	"body": "access denied by policy\n",
	"reason": "no_rule_matched",
}

allow := {
	"allowed": true,
	"headers": {"x-verdict-rule": rule_id},
	"reason": rule_id,
} if {
	count(denied_by) == 0
	rule_id := min(allowed_by)
}

allow := {
	"allowed": false,
	"http_status": 403,
	"headers": {"x-verdict-policy": "default"},
	"body": "access denied by policy\n",
	"reason": rule_id,
} if {
	rule_id := min(denied_by)
}

allowed_by contains rule.id if {
	some rule in data.mesh.allow
	matches(rule)
}

denied_by contains rule.id if {
	some rule in data.mesh.deny
	matches(rule)
}

matches(rule) if {
	principal_matches(rule.principals)
	method_matches(rule.methods)
	path_matches(rule.paths)
}

# The request path as sent, without its query string or fragment.
request_path := split(split(input.attributes.request.http.path, "?")[0], "#")[0]

principal_matches(principals) if "anyone" in principals

principal_matches(principals) if {
	"authenticated" in principals
	input.spiffe.id
}

principal_matches(principals) if {
	some pattern in principals
	startswith(pattern, "spiffe://")
	pattern_matches(pattern, input.spiffe.id)
}

method_matches(methods) if "*" in methods

method_matches(methods) if input.attributes.request.http.method in methods

path_matches(paths) if {
	some pattern in paths
	pattern_matches(pattern, request_path)
}

pattern_matches(pattern, value) if pattern == value

pattern_matches(pattern, value) if {
	endswith(pattern, "/**")
	startswith(value, trim_suffix(pattern, "**"))
}

pattern_matches(pattern, value) if {
	not endswith(pattern, "/**")
	contains(pattern, "*")
	want := split(pattern, "/")
	got := split(value, "/")
	count(want) == count(got)
	every i, segment in want {
		segment_matches(segment, got[i])
	}
}

segment_matches("*", _)

segment_matches(segment, value) if segment == value
