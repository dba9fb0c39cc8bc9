// Package web holds the browser client (plain ES modules, HTML and CSS, no
// build step), embedded so that every binary serving the api can serve it.
// internal/webui serves it over HTTP.
package web

import "embed"

// FS holds the client's files at its root: index.html, *.js, *.css, *.svg.
//
//go:embed *.html *.js *.css *.svg
var FS embed.FS
