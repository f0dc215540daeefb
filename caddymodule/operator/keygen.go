package operator

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// keygenCommand is `caddy sms-stepup keygen`: not an action on a handler,
// so not in the table; it reads no config.
func keygenCommand() *cobra.Command {
	keygen := &cobra.Command{
		Use:   "keygen [--ed25519 --out <file>]",
		Short: "Makes a new signing key",
		Long: `
Prints a new random signing_key: 32 bytes from the system's secure random
source, base64-encoded (44 characters). Give every instance the same one, for
example through {env.STEPUP_SIGNING_KEY}. The key id (kid) tokens will carry
goes to stderr.

With --ed25519 --out <file>, writes a new Ed25519 private key (PKCS#8 PEM,
mode 0600) for signing_key_file instead, and prints its kid. It never
overwrites a file. It reads no config.`,
		Example: `  STEPUP_SIGNING_KEY=$(caddy sms-stepup keygen)
  caddy sms-stepup keygen --ed25519 --out /etc/caddy/stepup-ed25519.pem`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			c.SilenceUsage = true
			ed, _ := c.Flags().GetBool("ed25519")
			out, _ := c.Flags().GetString("out")
			if !ed {
				if out != "" {
					return errors.New("--out goes with --ed25519; the HMAC key is printed: redirect it where you keep secrets")
				}
				key, kid, err := newSigningKey()
				if err != nil {
					return err
				}
				fmt.Fprintln(c.OutOrStdout(), key)
				fmt.Fprintf(c.ErrOrStderr(), "kid %s: set it as signing_key on every instance (e.g. signing_key {env.STEPUP_SIGNING_KEY})\n", kid)
				return nil
			}
			if out == "" {
				return errors.New("--ed25519 needs --out <file>: where to write the private key")
			}
			kid, err := writeEd25519Key(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote a new Ed25519 private key to %s (PKCS#8 PEM, mode 0600), kid %s: set signing_key_file %s\n", out, kid, out)
			return nil
		},
	}
	keygen.Flags().Bool("ed25519", false, "Make an Ed25519 key for signing_key_file (EdDSA tokens) instead")
	keygen.Flags().String("out", "", "With --ed25519: the file to write the private key to (must not exist)")
	return keygen
}

// newSigningKey returns a signing_key (32 random bytes, base64) and the key
// id tokens signed with it carry.
func newSigningKey() (key, kid string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	key = base64.StdEncoding.EncodeToString(b)
	k, err := otp.DeriveKeys([]byte(key))
	if err != nil {
		return "", "", err
	}
	return key, k.ID, nil
}

// writeEd25519Key writes a new Ed25519 private key to path (PKCS#8 PEM,
// 0600), never over an existing file, and returns its kid.
func writeEd25519Key(path string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s exists: keygen never overwrites a key; choose another --out", path)
	}
	if err != nil {
		return "", err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return otp.NewEdKey(pub, priv).ID, nil
}
