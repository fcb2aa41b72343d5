//! kubectl-argo-rollouts
