-- +goose Up
-- PostgreSQL's 00006 switches message bodies to lz4 TOAST compression;
-- SQLite stores them as they are. Kept so both dialects share numbering.
SELECT 1;

-- +goose Down
SELECT 1;
