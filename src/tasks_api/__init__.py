"""Tasks API: private task lists for a Next.js + Better-Auth app."""
