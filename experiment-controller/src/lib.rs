//! The experiment controller (not implemented yet). It will own Experiments and meet the
//! other controllers only through the status subresources of the Kubernetes API.
