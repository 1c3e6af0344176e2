package server

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/tgate-web/tgate/internal/edge/card"
	"github.com/tgate-web/tgate/internal/edge/ratelimit"
	"github.com/tgate-web/tgate/internal/edge/share"
)

// immutable is the Cache-Control of a share's image and card: both are
// named by the image's content.
const immutable = "public, max-age=31536000, immutable"

// shareCSP keeps a share page to its own images and inline style.
const shareCSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveUpload answers POST /api/share: the client's rate limit is counted
// first, then the PNG is read (at most share.MaxBytes), checked by
// share.Check, and stored in the bucket (the image, then its Meta) before
// the answer: 201 with {id, url, image, card} and the page's URL in
// Location. The same image uploaded again gets the same link.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		s.writeError(w, r, http.StatusMethodNotAllowed, "POST a PNG to share it")
		return
	}
	if r.ContentLength > share.MaxBytes {
		s.writeError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the upload is %d bytes; at most %d (8 MiB) are accepted", r.ContentLength, share.MaxBytes))
		return
	}
	ctx := r.Context()
	lim := &ratelimit.Limiter{Store: s.Counts, Limit: s.ShareLimit, Window: s.ShareWindow, Prefix: "share:", Now: s.Now}
	d, err := lim.Allow(ctx, ratelimit.ClientKey(r))
	if err != nil {
		s.writeError(w, r, http.StatusServiceUnavailable, "the upload limit cannot be checked now; try again: "+err.Error())
		return
	}
	if !d.Allowed {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
		s.writeError(w, r, http.StatusTooManyRequests, fmt.Sprintf("too many uploads: at most %d per %v; try again later", s.ShareLimit, s.ShareWindow))
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, share.MaxBytes+1))
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, "reading the upload: "+err.Error())
		return
	}
	m, err := share.Check(data)
	if err != nil {
		s.writeError(w, r, share.StatusOf(err), err.Error())
		return
	}
	if existing, err := s.Bucket.Get(ctx, share.MetaKey(m.ID)); err == nil && existing != nil {
		existing.Body.Close()
	} else {
		meta, err := share.MarshalMeta(m)
		if err == nil {
			err = s.Bucket.Put(ctx, share.ImageKey(m.ID), data, "image/png")
		}
		if err == nil {
			err = s.Bucket.Put(ctx, share.MetaKey(m.ID), meta, "application/json")
		}
		if err != nil {
			s.writeError(w, r, http.StatusBadGateway, "storing the image failed: "+err.Error())
			return
		}
	}
	b := base(r)
	w.Header().Set("Location", b+share.PagePath(m.ID))
	s.writeJSON(w, r, http.StatusCreated, map[string]any{
		"id": m.ID, "url": b + share.PagePath(m.ID), "image": b + share.ImagePath(m.ID), "card": b + share.CardPath(m.ID),
		"width": m.Width, "height": m.Height,
	})
}

// serveShare answers GET|HEAD /s/<id>, /s/<id>/image.png and
// /s/<id>/card.png (rest holds the segments after "s").
func (s *Server) serveShare(w http.ResponseWriter, r *http.Request, rest []string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeError(w, r, http.StatusMethodNotAllowed, "share pages answer GET and HEAD only")
		return
	}
	if len(rest) == 0 || !share.ValidID(rest[0]) || len(rest) > 2 {
		s.notFound(w, r)
		return
	}
	id := rest[0]
	switch {
	case len(rest) == 1:
		s.sharePage(w, r, id)
	case rest[1] == "image.png":
		s.shareImage(w, r, id)
	case rest[1] == "card.png":
		s.shareCard(w, r, id)
	default:
		s.notFound(w, r)
	}
}

// loadMeta reads a share's Meta; nil when there is no such share.
func (s *Server) loadMeta(r *http.Request, id string) (*share.Meta, error) {
	obj, err := s.Bucket.Get(r.Context(), share.MetaKey(id))
	if err != nil || obj == nil {
		return nil, err
	}
	defer obj.Body.Close()
	data, err := io.ReadAll(io.LimitReader(obj.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	m, err := share.UnmarshalMeta(data)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// sharePage answers the HTML page of a share.
func (s *Server) sharePage(w http.ResponseWriter, r *http.Request, id string) {
	m, err := s.loadMeta(r, id)
	if err != nil {
		s.writeError(w, r, http.StatusBadGateway, "reading the share failed: "+err.Error())
		return
	}
	if m == nil {
		s.notFound(w, r)
		return
	}
	page, err := share.Page(base(r), *m)
	if err != nil {
		s.writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("Content-Security-Policy", shareCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(page)
	}
}

// shareImage answers a share's PNG as it was uploaded (with its settings
// chunk).
func (s *Server) shareImage(w http.ResponseWriter, r *http.Request, id string) {
	obj, err := s.Bucket.Get(r.Context(), share.ImageKey(id))
	if err != nil {
		s.writeError(w, r, http.StatusBadGateway, "reading the image failed: "+err.Error())
		return
	}
	if obj == nil {
		s.notFound(w, r)
		return
	}
	s.sendPNG(w, r, obj.Body, obj.Size, "tgate-"+id+".png", "")
}

// shareCard answers a share's 1200×630 card. It is rendered on the first
// request (package card) and stored in the bucket before the answer;
// later requests are answered from the bucket.
func (s *Server) shareCard(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	if obj, err := s.Bucket.Get(ctx, share.CardKey(id)); err == nil && obj != nil {
		s.sendPNG(w, r, obj.Body, obj.Size, "", "stored")
		return
	}
	m, err := s.loadMeta(r, id)
	if err != nil {
		s.writeError(w, r, http.StatusBadGateway, "reading the share failed: "+err.Error())
		return
	}
	if m == nil {
		s.notFound(w, r)
		return
	}
	obj, err := s.Bucket.Get(ctx, share.ImageKey(id))
	if err != nil || obj == nil {
		s.writeError(w, r, http.StatusBadGateway, fmt.Sprintf("reading the image failed: %v", err))
		return
	}
	data, err := io.ReadAll(io.LimitReader(obj.Body, share.MaxBytes+1))
	obj.Body.Close()
	if err != nil {
		s.writeError(w, r, http.StatusBadGateway, "reading the image failed: "+err.Error())
		return
	}
	img, err := share.DecodeImage(data)
	if err != nil {
		s.writeError(w, r, http.StatusInternalServerError, "the stored image does not decode: "+err.Error())
		return
	}
	sum := share.Summarize(*m)
	png, err := card.Encode(img, card.Text{Prompt: sum.Prompt, Lines: []string{sum.Sampling, sum.Image, sum.TGate}})
	if err != nil {
		s.writeError(w, r, http.StatusInternalServerError, "rendering the card failed: "+err.Error())
		return
	}
	if err := s.Bucket.Put(ctx, share.CardKey(id), png, "image/png"); err != nil && s.Logf != nil {
		s.Logf("storing the card of %s: %v", id, err)
	}
	s.sendPNG(w, r, io.NopCloser(bytes.NewReader(png)), int64(len(png)), "", "made")
}

// sendPNG answers with a PNG: immutable caching, CORS (the card is
// fetched by link-preview crawlers, the image by pages) and, for a card,
// the X-Tgate-Card header saying whether it was "made" for this request
// or "stored" from an earlier one.
func (s *Server) sendPNG(w http.ResponseWriter, r *http.Request, body io.ReadCloser, size int64, filename, cardState string) {
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", immutable)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	if cardState != "" {
		h.Set("X-Tgate-Card", cardState)
	}
	if filename != "" {
		h.Set("Content-Disposition", `inline; filename="`+filename+`"`)
	}
	if size > 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	copyBody(w, r, body)
}
