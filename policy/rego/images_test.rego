package k8s.images_test

import data.fixtures_test as f
import data.k8s.images
import rego.v1

test_digest_image_allowed if {
	count(images.deny) == 0 with input as f.good
}

test_latest_denied if {
	c := object.union(f.container, {"image": "nginx:latest"})
	some msg in images.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "uses the :latest tag")
}

test_untagged_denied if {
	c := object.union(f.container, {"image": "docker.io/library/nginx"})
	some msg in images.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "no tag or digest")
}

test_registry_port_is_not_a_tag if {
	c := object.union(f.container, {"image": "registry.local:5000/nginx"})
	some msg in images.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "no tag or digest")
}

test_pinned_third_party_tag_allowed if {
	c := object.union(f.container, {"image": "nats:2.10.24-alpine"})
	count(images.deny) == 0 with input as f.bundle([f.deployment(c)])
}

test_own_image_by_tag_denied if {
	c := object.union(f.container, {"image": "ghcr.io/companyos/asset-inventory:v1.2.3"})
	some msg in images.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "must pull our image by digest")
}
