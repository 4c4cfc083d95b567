package warden.kubernetes.acme_test

# Rego unit tests next to user rules are not loaded as rules.
test_placeholder if true
