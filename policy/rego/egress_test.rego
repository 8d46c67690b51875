package k8s.egress_test

import data.fixtures_test as f
import data.k8s.egress
import rego.v1

np(egress_rules) := {
	"kind": "NetworkPolicy", "metadata": {"name": "api", "namespace": "inv"},
	"spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"], "egress": egress_rules},
}

test_default_deny_and_explicit_rules_allowed if {
	rules := [
		{"to": [{"podSelector": {"matchLabels": {"app": "nats"}}}], "ports": [{"port": 4222}]},
		{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]},
	]
	count(egress.deny) == 0 with input as {"objects": array.concat(f.good.objects, [np(rules)])}
}

test_no_default_deny_denied if {
	egress.deny == {"Deployment/inv/api: egress is not explicit: namespace inv has no default-deny egress NetworkPolicy"} with input as {"objects": [f.deployment(f.container)]}
}

test_ingress_only_default_deny_is_not_enough if {
	ingress_only := json.patch(f.default_deny, [{"op": "replace", "path": "/spec/policyTypes", "value": ["Ingress"]}])
	some msg in egress.deny with input as {"objects": [ingress_only, f.deployment(f.container)]}
	contains(msg, "no default-deny egress")
}

test_rule_without_to_denied if {
	some msg in egress.deny with input as f.bundle([f.deployment(f.container), np([{"ports": [{"port": 443}]}])])
	contains(msg, "has no `to` and allows every destination")
}

test_internet_all_ports_denied if {
	some msg in egress.deny with input as f.bundle([np([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])])
	contains(msg, "allows every port to 0.0.0.0/0")
}

test_cilium_world_denied if {
	cnp := {"kind": "CiliumNetworkPolicy", "metadata": {"name": "c", "namespace": "inv"}, "spec": {"egress": [{"toEntities": ["world"]}]}}
	some msg in egress.deny with input as f.bundle([cnp])
	contains(msg, "allows the entity world")
}

test_cilium_star_fqdn_denied if {
	cnp := {"kind": "CiliumNetworkPolicy", "metadata": {"name": "c", "namespace": "inv"}, "spec": {"egress": [{"toFQDNs": [{"matchPattern": "*"}]}]}}
	some msg in egress.deny with input as f.bundle([cnp])
	contains(msg, "allows every host name")
}

test_cilium_named_fqdn_allowed if {
	cnp := {"kind": "CiliumNetworkPolicy", "metadata": {"name": "c", "namespace": "inv"}, "spec": {"egress": [{"toFQDNs": [{"matchName": "management.azure.com"}]}]}}
	count(egress.deny) == 0 with input as f.bundle([cnp])
}
