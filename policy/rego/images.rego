# Images: never :latest, always a tag or a digest, and our own images by digest only.
package k8s.images

import data.lib.k8s
import rego.v1

own_registry := "ghcr.io/companyos/"

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not contains(c.image, "@")
	endswith(c.image, ":latest")
	msg := sprintf("%s: container %s uses the :latest tag (%s)", [k8s.name(obj), c.name, c.image])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not contains(c.image, "@")
	parts := split(c.image, "/")
	not contains(parts[count(parts) - 1], ":")
	msg := sprintf("%s: container %s uses the :latest tag implicitly: no tag or digest (%s)", [k8s.name(obj), c.name, c.image])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	startswith(c.image, own_registry)
	not regex.match(`@sha256:[0-9a-f]{64}$`, c.image)
	msg := sprintf("%s: container %s must pull our image by digest (%s)", [k8s.name(obj), c.name, c.image])
}
