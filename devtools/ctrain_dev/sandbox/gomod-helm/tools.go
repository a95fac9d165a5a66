//go:build tools

// Package tools pins the upstream helm command that the sandbox builds from this module.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
