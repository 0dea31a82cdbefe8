// Package deploycheck holds the tests of the deployment files, which hold
// no Go of their own: the Dockerfile and its build recipe
// (deploy/build.sh), docker-compose.yml (loaded with compose-go), the
// Kubernetes manifests in deploy/kubernetes (decoded strictly with the
// k8s.io/api types and rendered with kubectl kustomize) and the systemd
// units in deploy/systemd (systemd-analyze verify). Every environment
// variable and secret file they set is checked against the config package,
// so a misspelt key fails here instead of being ignored in production.
package deploycheck
