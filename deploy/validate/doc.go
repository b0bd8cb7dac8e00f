// Package validate checks TIP's container deployment files offline, with the
// libraries the tools themselves use: deploy/compose/compose.yaml through
// compose-go's loader (schema, interpolation with .env.example), the Helm chart
// deploy/helm/tip through Helm's linter and renderer with every manifest decoded
// strictly into its Kubernetes type, and both against what the production-like
// stack runs (internal/devstack). It is a module of its own so that TIP's
// go.mod stays free of Helm and Kubernetes. Run it with `make test-deploy`.
package validate
