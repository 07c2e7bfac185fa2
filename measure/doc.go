// Package measure turns boot facts into TPM PCR extensions and a TCG
// crypto-agile event log. The same event encoders are used by /init and by
// the host's predictor and verifier.
package measure
