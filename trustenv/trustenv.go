// Package trustenv works out what a sandboxed command must see so that it
// trusts extra CA certificates (the TLS inspection's per-run CA) with no
// setup of its own: the system trust bundles with those certificates
// added, an extra-certificates file for Node.js, a PKCS#12 trust store for
// the JVM, and the environment variables that point tools at them.
//
// It is pure: the host's files come in through a read function and the
// result is a list of files (with the system paths each is to be seen at)
// and an environment; the sandbox writes and binds them.
//
// What a variable the caller already set becomes: a bundle variable
// (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, ...) or NODE_EXTRA_CA_CERTS naming a
// file keeps that file's meaning: it is pointed at a copy of the
// certificates of the caller's file with the extra ones added (only
// CERTIFICATE blocks are copied, so nothing else of a file the view may
// hide is ever shown). A caller's file that cannot be read is reported in
// Result.Notes and the variable points at the system bundle with the extra
// certificates instead. A JAVA_TOOL_OPTIONS that already names a trust
// store (-Djavax.net.ssl.trustStore…) is left as it is, and said in Notes:
// sandgate cannot read every store format, and replacing the caller's
// store would silently drop what it trusts.
package trustenv

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// SystemBundles are the PEM trust bundles of the common Linux
// distributions, first the one taken as the host's main bundle when
// several exist: Debian/Ubuntu, Fedora/RHEL (both paths), Alpine,
// openSUSE, and the others Go's crypto/x509 and OpenSSL builds look at.
// Each one that exists on the host is seen by the command with the extra
// certificates added to its own content.
var SystemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch (link)
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Fedora, RHEL 7+
	"/etc/ssl/cert.pem",                                 // Alpine
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/var/lib/ca-certificates/ca-bundle.pem",            // openSUSE (the file behind the link)
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/ca-certificates/extracted/tls-ca-bundle.pem",  // Arch
	"/usr/lib/ssl/cert.pem",                             // Debian's OpenSSL default file
	"/etc/pki/tls/cert.pem",                             // RHEL's OpenSSL default file
}

// SystemTrustStores are the JVM's system trust stores (cacerts) of the
// common distributions; each that exists is seen by the command as the
// PKCS#12 trust store (JVMs since 9 read either format there).
var SystemTrustStores = []string{
	"/etc/ssl/certs/java/cacerts",                     // Debian, Ubuntu
	"/etc/pki/ca-trust/extracted/java/cacerts",        // Fedora, RHEL
	"/etc/pki/java/cacerts",                           // RHEL (link)
	"/etc/ca-certificates/extracted/java-cacerts.jks", // Arch
}

// BundleVars are the variables that name a whole CA bundle: OpenSSL and
// Go (SSL_CERT_FILE), Python requests, pip, curl, git, Cargo and the AWS
// tools. Each points at a bundle with the extra certificates.
var BundleVars = []string{
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE",
	"GIT_SSL_CAINFO", "CARGO_HTTP_CAINFO", "AWS_CA_BUNDLE",
}

// Variables set besides BundleVars.
const (
	// NodeVar names certificates Node.js adds to its own roots.
	NodeVar = "NODE_EXTRA_CA_CERTS"
	// JavaVar gets the JVM's trust store options appended.
	JavaVar = "JAVA_TOOL_OPTIONS"
)

// Names of the files of a Result, in the directory the command sees them
// in.
const (
	BundleFile     = "ca-bundle.pem"  // the host's main bundle and the extra certificates
	ExtraFile      = "extra-ca.pem"   // the extra certificates only (Node.js)
	TrustStoreFile = "truststore.p12" // the main bundle as a PKCS#12 trust store (JVM)
)

// Input is what Build works from.
type Input struct {
	// Extra is the PEM of the certificates the command must trust
	// (certificates only; see ParsePEM).
	Extra []byte
	// Env is the command's environment before (KEY=VALUE).
	Env []string
	// Dir is the absolute directory where the command sees the files of
	// the Result.
	Dir string
	// ReadFile reads a host file (following symbolic links); an error
	// wrapping fs.ErrNotExist means there is none.
	ReadFile func(name string) ([]byte, error)
	// Bundles and TrustStores are the system paths to consider (nil:
	// SystemBundles, SystemTrustStores).
	Bundles, TrustStores []string
}

// File is one file of a Result.
type File struct {
	// Name is the file's name in Input.Dir.
	Name string
	// Data is its content.
	Data []byte
	// Targets are the host's system paths the command sees this file at
	// (bound read-only over them); none for files named only by the
	// environment.
	Targets []string
}

// Result is what the command gets.
type Result struct {
	Files []File
	// Env is the command's environment with the variables set.
	Env []string
	// Notes are messages for the user: a caller's file that could not be
	// read, a JVM trust store left as the caller set it.
	Notes []string
}

// ParsePEM reads certificates to trust: at least one CERTIFICATE block,
// every one a valid X.509 certificate, and no block of another type (a
// private key in particular is refused, so it can never reach the
// command). Text outside the blocks is ignored.
func ParsePEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE: only certificates may be given to the command to trust", n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// Certificates returns the DER of every CERTIFICATE block of data, in
// order and without repeats; everything else (other blocks, text, blocks
// that do not decode) is skipped. It reads files the caller named, which
// may hold anything.
func Certificates(data []byte) [][]byte {
	var out [][]byte
	seen := map[[32]byte]bool{}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" || len(b.Bytes) == 0 {
			continue
		}
		h := sha256.Sum256(b.Bytes)
		if seen[h] {
			continue
		}
		seen[h] = true
		out = append(out, b.Bytes)
	}
}

// EncodePEM is ders as CERTIFICATE blocks.
func EncodePEM(ders [][]byte) []byte {
	var buf bytes.Buffer
	for _, d := range ders {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	return buf.Bytes()
}

// Bundle is base (a bundle's bytes, kept as they are) followed by the
// certificates of extra that base does not hold already.
func Bundle(base, extra []byte) []byte {
	have := map[[32]byte]bool{}
	for _, d := range Certificates(base) {
		have[sha256.Sum256(d)] = true
	}
	var add [][]byte
	for _, d := range Certificates(extra) {
		if !have[sha256.Sum256(d)] {
			add = append(add, d)
		}
	}
	out := append([]byte(nil), base...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, EncodePEM(add)...)
}

// TrustStore is the certificates of bundle as a PKCS#12 trust store
// without a password, which JVMs since 8 read with
// -Djavax.net.ssl.trustStoreType=PKCS12. Certificates Go cannot parse
// are left out.
func TrustStore(bundle []byte) ([]byte, error) {
	var entries []pkcs12.TrustStoreEntry
	for i, d := range Certificates(bundle) {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			continue
		}
		// Aliases must differ: the JVM keeps one entry per alias.
		entries = append(entries, pkcs12.TrustStoreEntry{Cert: c, FriendlyName: fmt.Sprintf("sandgate-%d %s", i, c.Subject)})
	}
	if len(entries) == 0 {
		return nil, errors.New("making the JVM trust store: no certificate to put in it")
	}
	der, err := pkcs12.Passwordless.WithRand(rand.Reader).EncodeTrustStoreEntries(entries, "")
	if err != nil {
		return nil, fmt.Errorf("making the JVM trust store: %w", err)
	}
	return der, nil
}

// Build works out the files and the environment of a command that must
// trust in.Extra. See the package documentation for variables the caller
// set already.
func Build(in Input) (*Result, error) {
	if !path.IsAbs(in.Dir) {
		return nil, fmt.Errorf("the trust files' directory %q is not absolute", in.Dir)
	}
	if _, err := ParsePEM(in.Extra); err != nil {
		return nil, fmt.Errorf("the certificates to trust: %w", err)
	}
	extra := EncodePEM(Certificates(in.Extra))
	bundles, stores := in.Bundles, in.TrustStores
	if bundles == nil {
		bundles = SystemBundles
	}
	if stores == nil {
		stores = SystemTrustStores
	}
	b := &builder{in: in, res: &Result{}, byData: map[[32]byte]int{}}

	// The system bundles: each existing one with the extra certificates.
	// The first is the main bundle (that of the variables and the JVM).
	var main []byte
	haveMain := false
	for _, p := range bundles {
		data, err := in.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			b.note(fmt.Sprintf("the system trust bundle %s cannot be read (%v): the command sees it unchanged, without the run's CA", p, err))
			continue
		}
		name := ""
		if !haveMain {
			main, haveMain, name = data, true, BundleFile
		}
		b.add(name, Bundle(data, extra), p)
	}
	if !haveMain {
		b.add(BundleFile, extra)
	}
	bundlePath := b.path(Bundle(main, extra))

	store, err := TrustStore(Bundle(main, extra))
	if err != nil {
		return nil, err
	}
	b.add(TrustStoreFile, store)
	for _, p := range stores {
		if _, err := in.ReadFile(p); err == nil {
			b.add(TrustStoreFile, store, p)
		}
	}

	env := in.Env
	for _, v := range BundleVars {
		env = setVar(env, v, b.callerFile(v, lookup(env, v), bundlePath))
	}
	b.add(ExtraFile, extra)
	env = setVar(env, NodeVar, b.callerFile(NodeVar, lookup(env, NodeVar), b.path(extra)))
	env = b.java(env, b.path(store))
	b.res.Env = env
	return b.res, nil
}

// builder collects a Result's files, one per distinct content.
type builder struct {
	in     Input
	res    *Result
	byData map[[32]byte]int // content → index in res.Files
}

// add records a file of data (named name, or a name of its own when ""
// and new) seen at targets, and returns its index.
func (b *builder) add(name string, data []byte, targets ...string) int {
	h := sha256.Sum256(data)
	if i, ok := b.byData[h]; ok {
		b.res.Files[i].Targets = append(b.res.Files[i].Targets, targets...)
		return i
	}
	if name == "" {
		name = fmt.Sprintf("ca-bundle-%d.pem", len(b.res.Files))
	}
	b.res.Files = append(b.res.Files, File{Name: name, Data: data, Targets: targets})
	b.byData[h] = len(b.res.Files) - 1
	return len(b.res.Files) - 1
}

// path is where the command sees the file of data (added when new).
func (b *builder) path(data []byte) string {
	return path.Join(b.in.Dir, b.res.Files[b.add("", data)].Name)
}

// note records a message for the user.
func (b *builder) note(msg string) { b.res.Notes = append(b.res.Notes, msg) }

// callerFile is what variable v points at: def when the caller did not
// set it, else a copy of the certificates of the caller's file with the
// extra ones.
func (b *builder) callerFile(v, callerPath, def string) string {
	if callerPath == "" {
		return def
	}
	data, err := b.in.ReadFile(callerPath)
	if err != nil {
		b.note(fmt.Sprintf("%s=%s cannot be read (%v): it points at the system bundle with the run's CA instead", v, callerPath, err))
		return def
	}
	return b.path(Bundle(EncodePEM(Certificates(data)), EncodePEM(Certificates(b.in.Extra))))
}

// java returns env with the JVM pointed at the trust store at store,
// unless the caller's options name a trust store of their own.
func (b *builder) java(env []string, store string) []string {
	opts := lookup(env, JavaVar)
	if strings.Contains(opts, "-Djavax.net.ssl.trustStore") {
		b.note(JavaVar + " already sets the JVM's trust store (-Djavax.net.ssl.trustStore…): it is kept, and Java clients will not trust the run's CA")
		return env
	}
	add := "-Djavax.net.ssl.trustStore=" + store
	if strings.ContainsAny(store, " \t\n\"'") {
		add = `"` + add + `"`
	}
	add += " -Djavax.net.ssl.trustStoreType=PKCS12"
	if strings.TrimSpace(opts) != "" {
		add = opts + " " + add
	}
	return setVar(env, JavaVar, add)
}

// lookup is the value of the last k in env ("" when unset).
func lookup(env []string, k string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v
		}
	}
	return ""
}

// setVar returns env with every k replaced by one k=v at the end.
func setVar(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}
