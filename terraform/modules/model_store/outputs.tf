output "bucket_name" {
  description = "Name of the model bucket."
  value       = aws_s3_bucket.models.id
}

output "bucket_uri" {
  description = "s3:// URI of the bucket: the chart's modelStore.objectStore.uri."
  value       = "s3://${aws_s3_bucket.models.id}"
}

output "reader_role_arn" {
  description = "IRSA role of the model pods: the chart's modelServiceAccount eks.amazonaws.com/role-arn annotation."
  value       = aws_iam_role.reader.arn
}
