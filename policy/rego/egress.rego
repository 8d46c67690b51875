# Egress must be explicit: every namespace that runs workloads has a default-deny egress
# NetworkPolicy, and no policy opens egress wholesale (a rule without destinations, all ports to
# the internet, Cilium's world/all entities or a "*" FQDN).
package k8s.egress

import data.lib.k8s
import rego.v1

default_deny_egress(ns) if {
	some np in input.objects
	np.kind == "NetworkPolicy"
	k8s.namespace(np) == ns
	np.spec.podSelector == {}
	"Egress" in np.spec.policyTypes
	count(object.get(np.spec, "egress", [])) == 0
}

deny contains msg if {
	some obj in k8s.workloads
	ns := k8s.namespace(obj)
	not default_deny_egress(ns)
	msg := sprintf("%s: egress is not explicit: namespace %s has no default-deny egress NetworkPolicy", [k8s.name(obj), ns])
}

deny contains msg if {
	some np in input.objects
	np.kind == "NetworkPolicy"
	some i, rule in object.get(np.spec, "egress", [])
	count(object.get(rule, "to", [])) == 0
	msg := sprintf("%s: egress is not explicit: egress rule %d has no `to` and allows every destination", [k8s.name(np), i])
}

open_cidrs := {"0.0.0.0/0", "::/0"}

deny contains msg if {
	some np in input.objects
	np.kind == "NetworkPolicy"
	some i, rule in object.get(np.spec, "egress", [])
	some peer in object.get(rule, "to", [])
	peer.ipBlock.cidr in open_cidrs
	count(object.get(rule, "ports", [])) == 0
	msg := sprintf("%s: egress is not explicit: egress rule %d allows every port to %s", [k8s.name(np), i, peer.ipBlock.cidr])
}

deny contains msg if {
	some cnp in input.objects
	cnp.kind in {"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}
	some i, rule in object.get(cnp.spec, "egress", [])
	some entity in object.get(rule, "toEntities", [])
	entity in {"world", "all"}
	msg := sprintf("%s: egress is not explicit: egress rule %d allows the entity %s", [k8s.name(cnp), i, entity])
}

deny contains msg if {
	some cnp in input.objects
	cnp.kind in {"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}
	some i, rule in object.get(cnp.spec, "egress", [])
	some fqdn in object.get(rule, "toFQDNs", [])
	object.get(fqdn, "matchPattern", "") == "*"
	msg := sprintf("%s: egress is not explicit: egress rule %d allows every host name", [k8s.name(cnp), i])
}
