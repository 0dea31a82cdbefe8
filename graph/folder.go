package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/servicedesk/servicedesk/mailbox"
)

// folder is a mailFolder
// (https://learn.microsoft.com/en-us/graph/api/resources/mailfolder).
type folder struct {
	ID             string `json:"id"`
	DisplayName    string `json:"displayName"`
	TotalItemCount int64  `json:"totalItemCount"`
}

// wellKnown are the well-known folder names Graph accepts in place of a
// folder ID, whatever the mailbox's language calls them
// (https://learn.microsoft.com/en-us/graph/api/resources/mailfolder#well-known-folder-names).
var wellKnown = map[string]bool{
	"archive": true, "clutter": true, "conflicts": true, "conversationhistory": true, "deleteditems": true,
	"drafts": true, "inbox": true, "junkemail": true, "localfailures": true, "msgfolderroot": true,
	"outbox": true, "recoverableitemsdeletions": true, "scheduled": true, "searchfolders": true,
	"sentitems": true, "serverfailures": true, "syncissues": true,
}

// resolveFolder finds the folder at path: a well-known name or display
// name at the top of the mailbox, then display names of child folders,
// separated by "/". With create, missing folders are made. A missing
// folder is mailbox.ErrNoMailbox.
func (c *Client) resolveFolder(ctx context.Context, path string, create bool) (folder, error) {
	var names []string
	for _, n := range strings.Split(path, "/") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return folder{}, fmt.Errorf("folder %q: %w", path, mailbox.ErrNoMailbox)
	}
	var cur folder
	for i, name := range names {
		var f folder
		var err error
		if i == 0 && wellKnown[strings.ToLower(name)] {
			err = c.doJSON(ctx, request{op: "open folder " + name, method: http.MethodGet,
				url: c.userURL() + "/mailFolders/" + strings.ToLower(name)}, &f)
		} else {
			f, err = c.childFolder(ctx, cur.ID, name)
			if errors.Is(err, errNotFound) && create {
				f, err = c.createFolder(ctx, cur.ID, name)
			}
		}
		var gerr *Error
		if errors.As(err, &gerr) && gerr.Code == "ErrorInvalidUser" {
			return folder{}, err // no such mailbox, not no such folder
		}
		if errors.Is(err, errNotFound) {
			return folder{}, fmt.Errorf("folder %q: %w (%q not found)", path, mailbox.ErrNoMailbox, name)
		}
		if err != nil {
			return folder{}, err
		}
		cur = f
	}
	return cur, nil
}

// foldersURL is where the child folders of parent are listed and made;
// parent "" is the top of the mailbox.
// https://learn.microsoft.com/en-us/graph/api/user-list-mailfolders,
// https://learn.microsoft.com/en-us/graph/api/mailfolder-list-childfolders
func (c *Client) foldersURL(parent string) string {
	if parent == "" {
		return c.userURL() + "/mailFolders"
	}
	return c.userURL() + "/mailFolders/" + url.PathEscape(parent) + "/childFolders"
}

// childFolder finds the child of parent named name, or errNotFound.
func (c *Client) childFolder(ctx context.Context, parent, name string) (folder, error) {
	var page struct {
		Value []folder `json:"value"`
	}
	filter := "displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"
	err := c.doJSON(ctx, request{op: "find folder " + name, method: http.MethodGet,
		url: c.foldersURL(parent) + "?$filter=" + escape(filter)}, &page)
	if err != nil {
		return folder{}, err
	}
	for _, f := range page.Value {
		if strings.EqualFold(f.DisplayName, name) {
			return f, nil
		}
	}
	return folder{}, fmt.Errorf("find folder %s: %w", name, errNotFound)
}

// createFolder makes the child of parent named name; one made meanwhile
// by someone else is found instead
// (https://learn.microsoft.com/en-us/graph/api/mailfolder-post-childfolders,
// https://learn.microsoft.com/en-us/graph/api/user-post-mailfolders).
func (c *Client) createFolder(ctx context.Context, parent, name string) (folder, error) {
	var f folder
	err := c.doJSON(ctx, request{op: "create folder " + name, method: http.MethodPost, url: c.foldersURL(parent),
		body: map[string]any{"displayName": name, "isHidden": false}}, &f)
	var gerr *Error
	if errors.As(err, &gerr) && gerr.Status == http.StatusConflict {
		return c.childFolder(ctx, parent, name)
	}
	if err == nil {
		c.d.log.Info("created folder", "user", c.cfg.User, "folder", name)
	}
	return f, err
}
