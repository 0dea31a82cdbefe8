package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// A Microsoft Graph folder has no UIDs: messages have opaque string IDs.
// The fetch's model is IMAP's (increasing UIDs under a UIDVALIDITY), so the
// store numbers a folder's messages in the order a delta sync first sees
// them, and keeps the delta link the sync continues from. A folder is named
// by its mailbox and folder ID (graph.Client chooses the key).

// GraphMessage is a message of a Graph folder with the UID the store gave
// it. Size is its size in bytes as Graph announced it (0 if unknown).
type GraphMessage struct {
	UID  uint32
	ID   string
	Size int64
}

// graphChunk bounds the IDs in one IN (...) list.
const graphChunk = 500

// migrateGraph adds the tables of Graph folders: each folder's delta link,
// and the UID given to each message ID.
func migrateGraph(tx *gorm.DB) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS graph_folders (
			folder TEXT PRIMARY KEY,
			delta_link TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE IF NOT EXISTS graph_messages (
			folder TEXT NOT NULL,
			uid BIGINT NOT NULL,
			graph_id TEXT NOT NULL,
			size BIGINT NOT NULL DEFAULT 0,
			PRIMARY KEY (folder, uid)
		)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS idx_graph_messages_id ON graph_messages (folder, graph_id)`,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// GraphDeltaLink returns the link the folder's delta sync continues from:
// "" before the first sync.
func (s *Store) GraphDeltaLink(ctx context.Context, folder string) (string, error) {
	var links []string
	err := s.db.WithContext(ctx).Raw(`SELECT delta_link FROM graph_folders WHERE folder = ?`, folder).Scan(&links).Error
	if err != nil {
		return "", fmt.Errorf("read delta link of graph folder: %w", err)
	}
	if len(links) == 0 {
		return "", nil
	}
	return links[0], nil
}

// SaveGraphDelta records one page of a delta sync in one transaction: the
// messages not seen before get the next UIDs of the folder, in the order
// given, and link becomes the point the sync continues from. Messages
// seen before keep their UIDs. Writers of one folder are serialised on
// its row, so UIDs only grow.
func (s *Store) SaveGraphDelta(ctx context.Context, folder string, msgs []GraphMessage, link string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		err := tx.Exec(`INSERT INTO graph_folders (folder, delta_link) VALUES (?, '') ON CONFLICT (folder) DO NOTHING`, folder).Error
		if err != nil {
			return fmt.Errorf("create graph folder: %w", err)
		}
		// The update takes the row's lock first: the UIDs below are
		// numbered by one writer at a time.
		if err := tx.Exec(`UPDATE graph_folders SET delta_link = ? WHERE folder = ?`, link, folder).Error; err != nil {
			return fmt.Errorf("save delta link of graph folder: %w", err)
		}
		known := map[string]bool{}
		for start := 0; start < len(msgs); start += graphChunk {
			ids := make([]string, 0, graphChunk)
			for _, m := range msgs[start:min(start+graphChunk, len(msgs))] {
				ids = append(ids, m.ID)
			}
			var found []string
			if err := tx.Raw(`SELECT graph_id FROM graph_messages WHERE folder = ? AND graph_id IN ?`, folder, ids).
				Scan(&found).Error; err != nil {
				return fmt.Errorf("look up graph messages: %w", err)
			}
			for _, id := range found {
				known[id] = true
			}
		}
		var next int64
		if err := tx.Raw(`SELECT COALESCE(MAX(uid), 0) FROM graph_messages WHERE folder = ?`, folder).Scan(&next).Error; err != nil {
			return fmt.Errorf("read highest UID of graph folder: %w", err)
		}
		for _, m := range msgs {
			if known[m.ID] {
				continue
			}
			known[m.ID] = true
			next++
			if next > int64(^uint32(0)) {
				return fmt.Errorf("graph folder has run out of UIDs")
			}
			if err := tx.Exec(`INSERT INTO graph_messages (folder, uid, graph_id, size) VALUES (?, ?, ?, ?)`,
				folder, next, m.ID, m.Size).Error; err != nil {
				return fmt.Errorf("number graph message: %w", err)
			}
		}
		return nil
	})
}

// GraphMessagesAfter returns the folder's messages with a UID above after,
// ascending, at most limit (limit <= 0: all).
func (s *Store) GraphMessagesAfter(ctx context.Context, folder string, after uint32, limit int) ([]GraphMessage, error) {
	q := s.db.WithContext(ctx).Table("graph_messages").Select("uid, graph_id AS id, size").
		Where("folder = ? AND uid > ?", folder, int64(after)).Order("uid")
	if limit > 0 {
		q = q.Limit(limit)
	}
	var out []GraphMessage
	if err := q.Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("list graph messages after UID %d: %w", after, err)
	}
	return out, nil
}

// GraphMessagesByUID returns those of uids the folder has, ascending.
func (s *Store) GraphMessagesByUID(ctx context.Context, folder string, uids []uint32) ([]GraphMessage, error) {
	var out []GraphMessage
	for start := 0; start < len(uids); start += graphChunk {
		chunk := make([]int64, 0, graphChunk)
		for _, u := range uids[start:min(start+graphChunk, len(uids))] {
			chunk = append(chunk, int64(u))
		}
		var part []GraphMessage
		err := s.db.WithContext(ctx).Table("graph_messages").Select("uid, graph_id AS id, size").
			Where("folder = ? AND uid IN ?", folder, chunk).Order("uid").Scan(&part).Error
		if err != nil {
			return nil, fmt.Errorf("look up graph messages by UID: %w", err)
		}
		out = append(out, part...)
	}
	return out, nil
}
