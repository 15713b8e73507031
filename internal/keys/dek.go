package keys

// dekAADPrefix separates wrapped data keys from every other use of a KEK.
const dekAADPrefix = "custos-dek-v1"

// dekAAD returns the associated data of a wrapped data key:
// "custos-dek-v1" || 0 || the caller's aad.
func dekAAD(aad []byte) []byte {
	b := make([]byte, 0, len(dekAADPrefix)+1+len(aad))
	b = append(b, dekAADPrefix...)
	b = append(b, 0)
	return append(b, aad...)
}
