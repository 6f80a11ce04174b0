// Package codehealth holds tree-wide checks of the module's own source:
// rules of shape (such as the longest a product function may be) that review
// would otherwise have to catch by eye. It has no product code; its checks
// are its tests, which walk the module from its root.
package codehealth
