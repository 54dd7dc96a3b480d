from django.conf import settings
from django.db import models


class Conversation(models.Model):
    subject = models.CharField(max_length=200)
    participants = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="conversations")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "conversación"
        verbose_name_plural = "conversaciones"

    def __str__(self) -> str:
        return self.subject


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sent_messages")
    body = models.TextField()
    sent_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    attachments = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "mensaje"
        verbose_name_plural = "mensajes"
        ordering = ["sent_at"]

    def __str__(self) -> str:
        return f"{self.sender}: {self.body[:40]}"
