package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
)

// Role is what a user or token may do.
type Role string

const (
	RoleAdmin  Role = "admin"  // may change configuration
	RoleViewer Role = "viewer" // reads only
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleViewer }

// User is a console user.
type User struct {
	ID           int64 `gorm:"primaryKey"`
	Email        string
	PasswordHash string
	Role         Role
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (User) TableName() string { return "users" }

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 12

// ErrBadCredentials is returned for a wrong e-mail address or password.
var ErrBadCredentials = errors.New("wrong e-mail address or password")

// ErrSetupDone is returned by CreateFirstAdmin once any user exists.
var ErrSetupDone = errors.New("the first admin has already been created; sign in")

// CreateUser adds a user with a bcrypt-hashed password.
func (s *Store) CreateUser(ctx context.Context, actor Actor, email, password string, role Role) (*User, error) {
	return s.createUser(ctx, actor, email, password, role, false)
}

// CreateFirstAdmin adds an admin only while no user exists at all (the
// console's one-time setup page); otherwise it returns ErrSetupDone.
func (s *Store) CreateFirstAdmin(ctx context.Context, email, password string) (*User, error) {
	return s.createUser(ctx, System("setup"), email, password, RoleAdmin, true)
}

// ValidateCredentials checks a new user's e-mail address and password,
// returning field errors keyed "email" and "password", so that a form can
// show every problem at once.
func ValidateCredentials(email, password string) connector.FieldErrors {
	errs := connector.FieldErrors{}
	addr, err := mail.ParseAddress(strings.TrimSpace(email))
	if err != nil || addr.Name != "" || !strings.Contains(addr.Address, "@") {
		errs["email"] = "enter an e-mail address like admin@contoso.com"
	}
	if n := utf8.RuneCountInString(password); n < MinPasswordLen {
		errs["password"] = fmt.Sprintf("use at least %d characters", MinPasswordLen)
	} else if len(password) > 72 {
		errs["password"] = "use at most 72 bytes (bcrypt's limit)"
	}
	return errs
}

func (s *Store) createUser(ctx context.Context, actor Actor, email, password string, role Role, onlyFirst bool) (*User, error) {
	errs := ValidateCredentials(email, password)
	addr, _ := mail.ParseAddress(strings.TrimSpace(email))
	if !role.Valid() {
		errs["role"] = "choose admin or viewer"
	}
	if len(errs) > 0 {
		return nil, errs
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u := &User{Email: strings.ToLower(addr.Address), PasswordHash: string(hash), Role: role}
	err = s.Transact(ctx, func(tx *gorm.DB) error {
		if onlyFirst {
			if s.dialect == Postgres {
				if err := tx.Exec("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").Error; err != nil {
					return fmt.Errorf("create first admin: %w", err)
				}
			}
			var n int64
			if err := tx.Model(&User{}).Count(&n).Error; err != nil {
				return fmt.Errorf("create first admin: %w", err)
			}
			if n > 0 {
				return ErrSetupDone
			}
		}
		if err := tx.Create(u).Error; err != nil {
			if isUniqueViolation(err) {
				return &ConflictError{Field: "email", Message: fmt.Sprintf("a user %s already exists", u.Email)}
			}
			return fmt.Errorf("create user: %w", err)
		}
		_, err := audit(tx, actor, "create", "user", u.ID, u.Email, map[string]any{"role": role})
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&User{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// Authenticate checks an e-mail address and password.
func (s *Store) Authenticate(ctx context.Context, email, password string) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Where("email = ?", strings.ToLower(strings.TrimSpace(email))).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		// Spend the same time as a real check, so timing does not tell
		// which e-mail addresses exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, ErrBadCredentials
	}
	return &u, nil
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("flowgate-timing-equalizer"), bcrypt.DefaultCost)
	return h
})

// APIToken is a bearer token for the JSON API. Only a hash is stored.
type APIToken struct {
	ID          int64 `gorm:"primaryKey"`
	Name        string
	TokenHash   string
	TokenPrefix string
	Role        Role
	CreatedBy   string
	CreatedAt   time.Time
	LastUsedAt  *time.Time
	RevokedAt   *time.Time
}

func (APIToken) TableName() string { return "api_tokens" }

// tokenPrefix starts every token, so a leaked one is easy to recognize.
const tokenPrefix = "fgt_"

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateToken makes a new API token and returns it in clear text, once.
// The token carries 256 random bits, so a plain SHA-256 is a safe hash.
func (s *Store) CreateToken(ctx context.Context, actor Actor, name string, role Role) (string, *APIToken, error) {
	name = strings.TrimSpace(name)
	errs := connector.FieldErrors{}
	if name == "" || utf8.RuneCountInString(name) > 64 {
		errs["name"] = "enter a name of 1 to 64 characters, like ci-pipeline"
	}
	if !role.Valid() {
		errs["role"] = "choose admin or viewer"
	}
	if len(errs) > 0 {
		return "", nil, errs
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	token := tokenPrefix + hex.EncodeToString(raw[:])
	t := &APIToken{Name: name, TokenHash: hashToken(token), TokenPrefix: token[:len(tokenPrefix)+6], Role: role, CreatedBy: actor.String()}
	err := s.Transact(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(t).Error; err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		_, err := audit(tx, actor, "create", "api_token", t.ID, name, map[string]any{"role": role, "prefix": t.TokenPrefix})
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return token, t, nil
}

// AuthenticateToken returns the live token matching a bearer token.
func (s *Store) AuthenticateToken(ctx context.Context, token string) (*APIToken, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 200 {
		return nil, ErrBadCredentials
	}
	var t APIToken
	err := s.db.WithContext(ctx).Where("token_hash = ? AND revoked_at IS NULL", hashToken(token)).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate token: %w", err)
	}
	if now := time.Now().UTC(); t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= tokenUseResolution {
		// At most one write a minute per token, and none when another
		// request (or process) has just written it. The use is
		// bookkeeping: failing to record it does not refuse the request.
		res := s.db.WithContext(ctx).Model(&APIToken{}).
			Where("id = ? AND (last_used_at IS NULL OR last_used_at <= ?)", t.ID, now.Add(-tokenUseResolution)).
			Update("last_used_at", now)
		if res.Error == nil && res.RowsAffected > 0 {
			t.LastUsedAt = &now
		}
	}
	return &t, nil
}

// tokenUseResolution is how precisely a token's last use is recorded.
const tokenUseResolution = time.Minute

// ListTokens returns all tokens, newest first (hashes only).
func (s *Store) ListTokens(ctx context.Context) ([]APIToken, error) {
	var out []APIToken
	if err := s.db.WithContext(ctx).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken makes a token unusable.
func (s *Store) RevokeToken(ctx context.Context, actor Actor, id int64) error {
	return s.Transact(ctx, func(tx *gorm.DB) error {
		var t APIToken
		err := tx.Where("revoked_at IS NULL").Take(&t, id).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if err := tx.Model(&t).Update("revoked_at", tx.NowFunc()).Error; err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		_, err = audit(tx, actor, "revoke", "api_token", id, t.Name, nil)
		return err
	})
}

// ListUsers returns all console users, by e-mail address.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	if err := s.db.WithContext(ctx).Order("email").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// GetUser returns one user.
func (s *Store) GetUser(ctx context.Context, id int64) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	return &u, nil
}

// DeleteUser removes a user and ends their sessions. The last admin cannot
// be removed, so the console can never be locked out.
func (s *Store) DeleteUser(ctx context.Context, actor Actor, id int64) error {
	return s.Transact(ctx, func(tx *gorm.DB) error {
		if s.dialect == Postgres {
			if err := tx.Exec("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").Error; err != nil {
				return fmt.Errorf("delete user: %w", err)
			}
		}
		var u User
		err := tx.Take(&u, id).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if u.Role == RoleAdmin {
			var admins int64
			if err := tx.Model(&User{}).Where("role = ?", RoleAdmin).Count(&admins).Error; err != nil {
				return fmt.Errorf("delete user: %w", err)
			}
			if admins <= 1 {
				return &ConflictError{Field: "user", Message: u.Email + " is the last admin; add another admin before removing this one"}
			}
		}
		if err := tx.Where("user_id = ?", id).Delete(&ConsoleSession{}).Error; err != nil {
			return fmt.Errorf("delete user sessions: %w", err)
		}
		if err := tx.Delete(&u).Error; err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		_, err = audit(tx, actor, "delete", "user", id, u.Email, map[string]any{"role": u.Role})
		return err
	})
}
