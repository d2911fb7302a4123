"""tierflow's REST API: the contract in shared form, wire-compatible with the Mixpeek API."""
