//! The analysis controller (not implemented yet). It will own AnalysisRuns and meet the
//! other controllers only through the status subresources of the Kubernetes API.
