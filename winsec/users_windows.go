//go:build windows

package winsec

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// CurrentUserSID returns the SID of this process's token user.
func CurrentUserSID() (string, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("reading this process's user: %w", err)
	}
	return u.User.Sid.String(), nil
}
