// Package attest proves which profile a device booted: the attestation key
// (AK), quotes over mcinit's PCR, the evidence files `mcinit attest` writes,
// the offline predictor and the verifier that turns evidence into a verdict.
// The predictor and the verifier replay measure's encoders, the very code
// /init measures with.
package attest
