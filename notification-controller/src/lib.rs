//! The notification controller (not implemented yet). It will send notifications for Rollouts and meet the
//! other controllers only through the status subresources of the Kubernetes API.
