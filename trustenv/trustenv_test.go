package trustenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io/fs"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testCert makes a self-signed CA certificate named cn, as PEM.
func testCert(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParsePEM(t *testing.T) {
	a, b := testCert(t, "a"), testCert(t, "b")
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
	for _, c := range []struct {
		name string
		in   []byte
		n    int
		err  string
	}{
		{"one", a, 1, ""},
		{"two with text", append(append([]byte("# comment\n"), a...), b...), 2, ""},
		{"empty", nil, 0, "no PEM CERTIFICATE block"},
		{"text only", []byte("hello\n"), 0, "no PEM CERTIFICATE block"},
		{"private key refused", append(append([]byte{}, a...), key...), 0, `block 2 is a "PRIVATE KEY"`},
		{"bad certificate", bad, 0, "PEM block 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParsePEM(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || len(got) != c.n {
				t.Fatalf("got %d certificates, %v; want %d", len(got), err, c.n)
			}
		})
	}
}

func TestCertificatesAndBundle(t *testing.T) {
	a, b := testCert(t, "a"), testCert(t, "b")
	key := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("secret")})
	mixed := bytes.Join([][]byte{[]byte("junk\n"), a, key, a, b}, nil)
	got := Certificates(mixed)
	if len(got) != 2 {
		t.Fatalf("Certificates: %d, want 2 (a, b; the key and the repeat skipped)", len(got))
	}
	if enc := EncodePEM(got); bytes.Contains(enc, []byte("PRIVATE")) || !bytes.Equal(enc, append(append([]byte{}, a...), b...)) {
		t.Fatalf("EncodePEM = %q", enc)
	}
	for _, c := range []struct {
		name        string
		base, extra []byte
		want        []byte
	}{
		{"base kept as it is", []byte("# host\n" + string(a)), b, []byte("# host\n" + string(a) + string(b))},
		{"newline added", bytes.TrimSuffix(a, []byte("\n")), b, append(append([]byte{}, a...), b...)},
		{"no repeat", a, append(append([]byte{}, a...), b...), append(append([]byte{}, a...), b...)},
		{"empty base", nil, b, b},
		{"only certificates of extra", nil, append(append([]byte{}, key...), b...), b},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Bundle(c.base, c.extra); !bytes.Equal(got, c.want) {
				t.Fatalf("Bundle = %q, want %q", got, c.want)
			}
		})
	}
}

func TestTrustStore(t *testing.T) {
	a, b := testCert(t, "same"), testCert(t, "same") // same subject: aliases must differ
	der, err := TrustStore(append(append([]byte{}, a...), b...))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pkcs12.DecodeTrustStore(der, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("trust store holds %d certificates, want 2", len(certs))
	}
	if _, err := TrustStore([]byte("nothing")); err == nil {
		t.Fatal("a trust store of no certificate was made")
	}
}

// fakeFS is a host's files for Build.
type fakeFS map[string]string

func (f fakeFS) read(name string) ([]byte, error) {
	v, ok := f[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if v == "EACCES" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return []byte(v), nil
}

func TestBuild(t *testing.T) {
	host, other, ca, corp := testCert(t, "host root"), testCert(t, "other root"), testCert(t, "run CA"), testCert(t, "corp")
	const dir = "/run/trust"
	deb := "/etc/ssl/certs/ca-certificates.crt"
	fed := "/etc/pki/tls/certs/ca-bundle.crt"
	alp := "/etc/ssl/cert.pem"
	jks := "/etc/ssl/certs/java/cacerts"
	type want struct {
		env     map[string]string // variable → value ("" = unset)
		targets map[string]string // target → file name
		files   map[string][]byte // file name → the certificates (DER set) it must hold
		notes   []string          // substrings, one each
	}
	bundleEnv := func(p string) map[string]string {
		m := map[string]string{NodeVar: dir + "/" + ExtraFile,
			JavaVar: "-Djavax.net.ssl.trustStore=" + dir + "/" + TrustStoreFile + " -Djavax.net.ssl.trustStoreType=PKCS12"}
		for _, v := range BundleVars {
			m[v] = p
		}
		return m
	}
	join := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	for _, c := range []struct {
		name string
		fs   fakeFS
		env  []string
		want want
	}{
		{
			name: "debian",
			fs:   fakeFS{deb: string(host), jks: "jks"},
			want: want{env: bundleEnv(dir + "/" + BundleFile),
				targets: map[string]string{deb: BundleFile, jks: TrustStoreFile},
				files:   map[string][]byte{BundleFile: join(host, ca), ExtraFile: ca, TrustStoreFile: join(host, ca)}},
		},
		{
			name: "no system bundle",
			fs:   fakeFS{},
			want: want{env: map[string]string{"SSL_CERT_FILE": dir + "/" + BundleFile, NodeVar: dir + "/" + BundleFile},
				targets: map[string]string{},
				files:   map[string][]byte{BundleFile: ca, TrustStoreFile: ca}},
		},
		{
			name: "two bundles of different content, one of the same",
			fs:   fakeFS{deb: string(host), fed: string(other), alp: string(host)},
			want: want{env: bundleEnv(dir + "/" + BundleFile),
				targets: map[string]string{deb: BundleFile, alp: BundleFile, fed: "ca-bundle-1.pem"},
				files:   map[string][]byte{BundleFile: join(host, ca), "ca-bundle-1.pem": join(other, ca)}},
		},
		{
			name: "unreadable system bundle",
			fs:   fakeFS{deb: "EACCES", fed: string(other)},
			want: want{env: map[string]string{"SSL_CERT_FILE": dir + "/" + BundleFile},
				targets: map[string]string{fed: BundleFile},
				files:   map[string][]byte{BundleFile: join(other, ca)},
				notes:   []string{deb + " cannot be read"}},
		},
		{
			name: "caller's variables keep their files",
			fs:   fakeFS{deb: string(host), "/corp.pem": "# corp\n" + string(corp) + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
			env: []string{"SSL_CERT_FILE=/corp.pem", "PATH=/bin", "CURL_CA_BUNDLE=/gone.pem", NodeVar + "=/corp.pem",
				JavaVar + "=-Xmx1g", "AWS_CA_BUNDLE=/first", "AWS_CA_BUNDLE=/corp.pem"},
			want: want{env: map[string]string{"SSL_CERT_FILE": dir + "/ca-bundle-2.pem", "AWS_CA_BUNDLE": dir + "/ca-bundle-2.pem",
				"CURL_CA_BUNDLE": dir + "/" + BundleFile, "GIT_SSL_CAINFO": dir + "/" + BundleFile,
				NodeVar: dir + "/ca-bundle-2.pem", "PATH": "/bin",
				JavaVar: "-Xmx1g -Djavax.net.ssl.trustStore=" + dir + "/" + TrustStoreFile + " -Djavax.net.ssl.trustStoreType=PKCS12"},
				files: map[string][]byte{"ca-bundle-2.pem": join(corp, ca), ExtraFile: ca},
				notes: []string{"CURL_CA_BUNDLE=/gone.pem cannot be read"}},
		},
		{
			name: "caller's JVM trust store kept",
			fs:   fakeFS{deb: string(host)},
			env:  []string{JavaVar + "=-Djavax.net.ssl.trustStore=/mine.jks"},
			want: want{env: map[string]string{JavaVar: "-Djavax.net.ssl.trustStore=/mine.jks"},
				notes: []string{"already sets the JVM's trust store"}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Build(Input{Extra: ca, Env: c.env, Dir: dir, ReadFile: c.fs.read,
				Bundles: []string{deb, fed, alp}, TrustStores: []string{jks, "/absent"}})
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			for _, kv := range res.Env {
				k, v, _ := strings.Cut(kv, "=")
				if _, dup := env[k]; dup {
					t.Errorf("%s set twice in %q", k, res.Env)
				}
				env[k] = v
			}
			for k, v := range c.want.env {
				if env[k] != v {
					t.Errorf("%s = %q, want %q", k, env[k], v)
				}
			}
			byName := map[string]File{}
			targets := map[string]string{}
			for _, f := range res.Files {
				if _, dup := byName[f.Name]; dup {
					t.Errorf("two files named %s", f.Name)
				}
				byName[f.Name] = f
				for _, tg := range f.Targets {
					if prev, dup := targets[tg]; dup {
						t.Errorf("%s is the target of %s and %s", tg, prev, f.Name)
					}
					targets[tg] = f.Name
				}
				if bytes.Contains(f.Data, []byte("PRIVATE KEY")) {
					t.Errorf("%s holds a private key block", f.Name)
				}
			}
			if c.want.targets != nil && !equalMaps(targets, c.want.targets) {
				t.Errorf("targets = %v, want %v", targets, c.want.targets)
			}
			for name, certs := range c.want.files {
				f, ok := byName[name]
				if !ok {
					t.Errorf("no file %s (files: %v)", name, names(res.Files))
					continue
				}
				got := Certificates(f.Data)
				if name == TrustStoreFile {
					cs, err := pkcs12.DecodeTrustStore(f.Data, "")
					if err != nil {
						t.Fatalf("the trust store: %v", err)
					}
					got = nil
					for _, c := range cs {
						got = append(got, c.Raw)
					}
				}
				if w := Certificates(certs); !slices.EqualFunc(got, w, bytes.Equal) {
					t.Errorf("%s holds %d certificates, want %d (in order)", name, len(got), len(w))
				}
			}
			if len(res.Notes) != len(c.want.notes) {
				t.Errorf("notes = %q, want %d", res.Notes, len(c.want.notes))
			}
			for i, n := range c.want.notes {
				if i < len(res.Notes) && !strings.Contains(res.Notes[i], n) {
					t.Errorf("note %d = %q, want %q in it", i, res.Notes[i], n)
				}
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	ca := testCert(t, "run CA")
	read := fakeFS{}.read
	for _, c := range []struct {
		name string
		in   Input
		err  string
	}{
		{"relative dir", Input{Extra: ca, Dir: "trust", ReadFile: read}, "not absolute"},
		{"no certificate", Input{Extra: []byte("x"), Dir: "/t", ReadFile: read}, "no PEM CERTIFICATE"},
		{"a key", Input{Extra: append(append([]byte{}, ca...), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1}})...), Dir: "/t", ReadFile: read}, "RSA PRIVATE KEY"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(c.in)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
}

func TestJavaQuoting(t *testing.T) {
	res, err := Build(Input{Extra: testCert(t, "ca"), Dir: "/tmp/a b", ReadFile: fakeFS{}.read})
	if err != nil {
		t.Fatal(err)
	}
	want := JavaVar + `="-Djavax.net.ssl.trustStore=/tmp/a b/` + TrustStoreFile + `" -Djavax.net.ssl.trustStoreType=PKCS12`
	if !slices.Contains(res.Env, want) {
		t.Fatalf("env %q lacks %q", res.Env, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func names(fs []File) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// FuzzCertificates checks the lenient reader of callers' files: it never
// panics, returns only certificate blocks, and reads its own output back
// unchanged.
func FuzzCertificates(f *testing.F) {
	f.Add(testCert(f, "seed"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ders := Certificates(data)
		enc := EncodePEM(ders)
		if again := Certificates(enc); !slices.EqualFunc(again, ders, bytes.Equal) {
			t.Fatalf("round trip: %d certificates, then %d", len(ders), len(again))
		}
		if bytes.Contains(enc, []byte("PRIVATE")) {
			t.Fatal("a non-certificate block came through")
		}
		_, _ = ParsePEM(data)
		b := Bundle(data, enc)
		if !bytes.HasPrefix(b, data) {
			t.Fatal("Bundle changed its base")
		}
	})
}
