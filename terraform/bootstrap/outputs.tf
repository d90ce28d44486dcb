output "state_bucket" {
  description = "Bucket for -backend-config=bucket=... of every environment."
  value       = aws_s3_bucket.state.id
}

output "state_kms_key_arn" {
  description = "Key for -backend-config=kms_key_id=... of every environment."
  value       = aws_kms_key.state.arn
}
