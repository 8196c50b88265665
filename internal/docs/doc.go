// Package docs holds no code of streamux: its tests keep the documentation true. They check that
// every relative link of README.md and docs/ leads to a file (and heading) of the repository and
// none leads outside it, that every example configuration in examples/ loads and validates as
// streamux would load it, and that the documentation's copies of those files are the files.
package docs
