package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Client submits checkpoints to one witness.
type Client struct {
	// URL is the witness's submission prefix; requests go to
	// URL + "/add-checkpoint".
	URL string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// ConflictError is returned by AddCheckpoint when the witness's latest
// cosigned checkpoint is not of the old size sent. Retry with a consistency
// proof from Size.
type ConflictError struct {
	Size uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness is at size %d", e.Size)
}

// ResponseError is any other refusal by the witness. Per tlog-witness, 404
// means the witness doesn't know the log, 403 that no log signature
// verified, 422 that the consistency proof didn't, and 409 without a size
// that the witness cosigned another root at this size: a fork.
type ResponseError struct {
	StatusCode int
	Message    string // the witness's message, cut short
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("witness answered %d: %s", e.StatusCode, e.Message)
}

// AddCheckpoint asks the witness to cosign checkpoint (a signed note),
// proving it consistent with the witness's checkpoint of size oldSize, and
// returns the witness's signature lines, each with its newline.
//
// The lines are well formed but not verified: as tlog-witness says, "the
// client MAY concatenate it to the checkpoint, and use a note verification
// function configured with the witness keys it trusts". AttachCosignatures
// does the concatenation.
//
// When the witness holds another size, the error is a *ConflictError
// carrying it; other refusals are *ResponseError.
func (c *Client) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([][]byte, error) {
	if len(proof) > MaxProofLines {
		return nil, fmt.Errorf("consistency proof has %d hashes, more than %d", len(proof), MaxProofLines)
	}
	url := strings.TrimSuffix(c.URL, "/") + "/add-checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(encodeRequest(oldSize, proof, checkpoint)))
	if err != nil {
		return nil, fmt.Errorf("couldn't make witness request: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't reach witness: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read witness answer: %w", err)
	}
	if len(body) > maxResponseSize {
		return nil, errors.New("witness answer is too large")
	}
	return parseResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

func parseResponse(status int, contentType string, body []byte) ([][]byte, error) {
	switch {
	case status == http.StatusOK:
		sigs, err := parseSignatureLines(body)
		if err != nil {
			return nil, fmt.Errorf("witness answered malformed cosignatures: %w", err)
		}
		return sigs, nil
	case status == http.StatusConflict && isSizeType(contentType):
		num, ok := strings.CutSuffix(string(body), "\n")
		size, err := parseSize(num)
		if !ok || err != nil {
			return nil, errors.New("witness answered 409 with a malformed size")
		}
		return nil, &ConflictError{Size: size}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return nil, &ResponseError{StatusCode: status, Message: strings.ToValidUTF8(msg, "?")}
}

func isSizeType(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && t == "text/x.tlog.size"
}
