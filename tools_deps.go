//go:build tools
package custos
import (
 _ "github.com/cedar-policy/cedar-go"
 _ "modernc.org/sqlite"
 _ "github.com/jackc/pgx/v5/pgxpool"
 _ "go.yaml.in/yaml/v3"
 _ "github.com/golang-jwt/jwt/v5"
 _ "github.com/rogpeppe/go-internal/testscript"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "golang.org/x/mod/sumdb/note"
)
