package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// ConsoleSession is a signed-in console session. The id the browser holds
// is never stored; IDHash is its SHA-256.
type ConsoleSession struct {
	IDHash    string `gorm:"primaryKey"`
	UserID    int64
	Data      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

func (ConsoleSession) TableName() string { return "console_sessions" }

// CreateSession starts a session for a user and returns its id, to be put
// in a cookie. Expired sessions are cleaned up on the way.
func (s *Store) CreateSession(ctx context.Context, userID int64, data string, ttl time.Duration) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	now := time.Now().UTC()
	if data == "" {
		data = "{}"
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("expires_at < ?", now).Delete(&ConsoleSession{}).Error; err != nil {
			return err
		}
		return tx.Create(&ConsoleSession{IDHash: hashToken(id), UserID: userID, Data: data, CreatedAt: now, ExpiresAt: now.Add(ttl)}).Error
	})
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return id, nil
}

// GetSession returns a live session and its user, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*ConsoleSession, *User, error) {
	if len(id) != 64 {
		return nil, nil, ErrNotFound
	}
	var sess ConsoleSession
	err := s.db.WithContext(ctx).Where("id_hash = ? AND expires_at > ?", hashToken(id), time.Now().UTC()).Take(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load session: %w", err)
	}
	var u User
	err = s.db.WithContext(ctx).Take(&u, sess.UserID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load session user: %w", err)
	}
	return &sess, &u, nil
}

// SaveSession stores a session's server-side data.
func (s *Store) SaveSession(ctx context.Context, id, data string) error {
	res := s.db.WithContext(ctx).Model(&ConsoleSession{}).Where("id_hash = ?", hashToken(id)).Update("data", data)
	if res.Error != nil {
		return fmt.Errorf("save session: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteSession ends a session (sign-out).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if err := s.db.WithContext(ctx).Where("id_hash = ?", hashToken(id)).Delete(&ConsoleSession{}).Error; err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
