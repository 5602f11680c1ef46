"""Test data for the guard tests: real-format (made-up) secrets and valid PII values."""

from __future__ import annotations

# provider-format secrets (made up; the shapes are what matters), with their category
SECRETS: dict[str, str] = {
    "aws_access_key": "AKIAQ3EGV7XKPL2MZ4TR",
    "github_token": "ghp_" + "x7Kp2QmZ9vLr4Tn8Wc1Ys6Hb3Jd5Fg0Ae2Ui",
    "gitlab_token": "glpat-" + "Zk3Xq9Lm2Vb7Nr4Tw8Yc",
    "slack_token": "xoxb-" + "2849175630-" + "Qw7Er2Ty9Ui4Op3As",
    "slack_webhook": "https://hooks.slack.com/services/T4K7P2M9Q/B8N3V6X1Z/Rq7Lm2Xk9Vb4Nz8Wc3Ty",
    "openai_key": "sk-proj-" + "Hq8Lz3Xk7Vm2Nb9Wr4Tc6Yp1Js5Df0Ga",
    "anthropic_key": "sk-ant-api03-" + "Wq7Lm2Xk9Vb4Nz8Tc3Yp6Js1Df5Ga0Hr",
    "google_api_key": "AIza" + "SyD4k8Lm2Xq9Vb7Nz3Wc6Tp1Js5Hr0Gf2Ua",
    "google_oauth": "GOCSPX-" + "Lm2Xq9Vb7Nz3Wc6Tp1Js5Hr0Gf4K",
    "stripe_key": "sk_live_" + "51Hq8Lz3Xk7Vm2Nb9Wr4Tc6Y",
    "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.Sfl4KxwRJ",
    "generic": 'db_password = "Zx8kQ2mP9vL4nR7tW3"',
}

# valid card numbers of several networks (test numbers published by the networks)
CARDS = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "378282246310005",
    "6011111111111117",
    "3530111333300000",
    "30569309025904",
    "2223003122003222",
    "4222222222222",
]

# valid IBANs (examples from national banking documentation)
IBANS = [
    "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "GB82 WEST 1234 5698 7654 32",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "NO9386011117947",
    "BE68539007547034",
    "CH9300762011623852957",
    "IT60X0542811101000000123456",
    "ES9121000418450200051332",
]
