// Package deployments holds what an operator needs to run seqchat as separate
// processes: the container image (Dockerfile), a compose file with a
// three-node NATS JetStream cluster, the NATS cluster configuration, an nginx
// load balancer and Kubernetes manifests. It has no Go code of its own; its
// test checks that every CHAT_* setting these files use exists in
// internal/config. See docs/deployment.md.
package deployments
