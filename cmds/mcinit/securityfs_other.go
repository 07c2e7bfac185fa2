//go:build !linux

package main

func mountSecurityFS() {}
