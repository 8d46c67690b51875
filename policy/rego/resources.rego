# Every container declares CPU and memory requests and limits.
package k8s.resources

import data.lib.k8s
import rego.v1

required := [["requests", "cpu"], ["requests", "memory"], ["limits", "cpu"], ["limits", "memory"]]

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	some r in required
	object.get(object.get(object.get(c, "resources", {}), r[0], {}), r[1], null) == null
	msg := sprintf("%s: container %s is missing resources.%s.%s", [k8s.name(obj), c.name, r[0], r[1]])
}
